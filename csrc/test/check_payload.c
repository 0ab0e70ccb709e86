/*
 * test/check_payload.c - exercises the trampoline's edges under the fake
 * kernel: call 1 returns plainly, call 2 changes the paging setup and
 * returns without undoing it (i386: paging on with 4 MiB identity pages,
 * CR4.PSE; x86_64: CR3 = a page table of its own, CR4.PGE), call 3
 * executes ud2 and must be reported as "kit: exception 6 at EIP=..." (RIP).
 */
#include <kit/kit.h>

static unsigned int calls;

#ifdef __x86_64__
static uint64_t pml4[512] __attribute__((aligned(4096)));
static uint64_t pdpt[512] __attribute__((aligned(4096)));
static uint64_t pd[512] __attribute__((aligned(4096)));

int payload_main(const struct kit_entry_state *entry)
{
	(void)entry;
	kit_printf("check_payload: call %u\n", ++calls);
	if (calls == 2) {
		for (uint64_t i = 0; i < 512; i++)
			pd[i] = (i << 21) | 0x83;	/* present, writable, 2 MiB */
		pdpt[0] = (uint64_t)pd | 3;
		pml4[0] = (uint64_t)pdpt | 3;
		__asm__ volatile("movq %0, %%cr3\n\t"
				 "movq %%cr4, %%rax; orq $0x80, %%rax; movq %%rax, %%cr4"
				 : : "r"(pml4) : "rax", "memory");
		kit_printf("check_payload: own page table, cr3=%p cr4=0x%lx\n",
			   (void *)kit_read_cr3(), kit_read_cr4());
	}
	if (calls == 3)
		__asm__ volatile("ud2");
	return 0;
}
#else
static uint32_t page_dir[1024] __attribute__((aligned(4096)));

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
#endif
