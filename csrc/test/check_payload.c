/*
 * test/check_payload.c - exercises the trampoline's edges under the fake
 * kernel: call 1 returns plainly, call 2 turns paging on (4 MiB identity
 * pages, CR4.PSE) and returns without undoing it, call 3 executes ud2 and
 * must be reported as "kit: exception 6 at EIP=...".
 */
#include <kit/kit.h>

static uint32_t page_dir[1024] __attribute__((aligned(4096)));
static unsigned int calls;

int payload_main(const struct kit_entry_state *entry)
{
	(void)entry;
	kit_printf("check_payload: call %u\n", ++calls);
	if (calls == 2) {
		for (uint32_t i = 0; i < 1024; i++)
			page_dir[i] = (i << 22) | 0x83;	/* present, writable, 4 MiB */
		__asm__ volatile("movl %%cr4, %%eax; orl $0x10, %%eax; movl %%eax, %%cr4\n\t"
				 "movl %0, %%cr3\n\t"
				 "movl %%cr0, %%eax; orl $0x80000000, %%eax; movl %%eax, %%cr0"
				 : : "r"(page_dir) : "eax", "memory");
		kit_printf("check_payload: paging on, cr0=0x%08x\n", kit_read_cr0());
	}
	if (calls == 3)
		__asm__ volatile("ud2");
	return 0;
}
