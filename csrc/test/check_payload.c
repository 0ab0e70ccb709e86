/*
 * test/check_payload.c - exercises the trampoline's edges under the fake
 * kernel:
 *   call 1 returns plainly;
 *   call 2 changes the paging setup and returns without undoing it (i386:
 *     paging on with 4 MiB identity pages, CR4.PSE; x86_64: CR3 = a page
 *     table of its own, CR4.PGE);
 *   call 3 executes ud2: reported, unwound, the kernel sees a normal return;
 *   call 4 reads that fault back (kit_previous_call_fault), sets up the
 *     paging of call 2 again without the last 4 MiB (i386) / with only the
 *     first GiB (x86_64) and touches an unmapped address: a #PF under the
 *     payload's own paging, which the unwind must undo; payload_fault()
 *     sees it;
 *   call 5 faults (ud2) and faults again in payload_fault() (divide by
 *     zero): a nested fault, which halts ("kit: exception 0 at ... while
 *     handling exception 6; halted").
 */
#include <kit/kit.h>

static unsigned int calls;

#ifdef __x86_64__
#define UNMAPPED	0x40000000ul	/* past the 1 GiB that own_paging() maps */

static uint64_t pml4[512] __attribute__((aligned(4096)));
static uint64_t pdpt[512] __attribute__((aligned(4096)));
static uint64_t pd[512] __attribute__((aligned(4096)));

static void own_paging(void)
{
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
#else
#define UNMAPPED	0xffc00000u	/* the last 4 MiB, left out on call 4 */

static uint32_t page_dir[1024] __attribute__((aligned(4096)));

static void own_paging(void)
{
	for (uint32_t i = 0; i < 1024; i++)
		page_dir[i] = (i << 22) | 0x83;	/* present, writable, 4 MiB */
	if (calls == 4)
		page_dir[1023] = 0;
	__asm__ volatile("movl %%cr4, %%eax; orl $0x10, %%eax; movl %%eax, %%cr4\n\t"
			 "movl %0, %%cr3\n\t"
			 "movl %%cr0, %%eax; orl $0x80000000, %%eax; movl %%eax, %%cr0"
			 : : "r"(page_dir) : "eax", "memory");
	kit_printf("check_payload: paging on, cr0=0x%08x\n", kit_read_cr0());
}
#endif

void payload_fault(const struct kit_fault *fault)
{
	kit_printf("check_payload: payload_fault: vector %u in call %u, cr2=%p\n",
		   (unsigned int)fault->vector, fault->call, (void *)fault->cr2);
	if (calls == 5)
		__asm__ volatile("xorl %%ecx, %%ecx\n\tdivl %%ecx" : : "a"(1), "d"(0) : "ecx");
}

int payload_main(const struct kit_entry_state *entry)
{
	const struct kit_fault *previous = kit_previous_call_fault();

	(void)entry;
	kit_printf("check_payload: call %u\n", ++calls);
	if (previous)
		kit_printf("check_payload: call %u faulted: vector %u at %p (faults: %u)\n",
			   previous->call, (unsigned int)previous->vector, (void *)previous->ip,
			   previous->count);
	if (calls == 2 || calls == 4)
		own_paging();
	if (calls == 3 || calls == 5)
		__asm__ volatile("ud2");
	if (calls == 4)
		(void)*(volatile uint32_t *)UNMAPPED;
	return 0;
}
