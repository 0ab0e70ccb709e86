/*
 * test/fault_payload.c - a payload that takes a CPU exception on its odd
 * calls and returns normally on its even ones: a fault costs the payload
 * that call, not the machine (kit/fault.h).  A test payload, not an example
 * (the .deb ships no binary of it); the tests build it with the kit:
 *	make -C csrc PAYLOAD=$PWD/csrc/test/fault_payload.c OUT=$PWD/fault_de \
 *		EXTRA_CFLAGS=-DFAULT_VECTOR=0 [ARCH=x86_64]
 *
 * FAULT_VECTOR chooses the fault:
 *   0  #DE  divl by zero.
 *   6  #UD  ud2.
 *  13  #GP  i386: loading ES with selector 0x80, one past the end of the
 *           kit's GDT (limit 0x7f): error code 0x80.  A stray pointer does
 *           not fault on i386: paging is off and the kernel's (and the
 *           kit's) segments are flat 4 GiB ones, so any address is "valid"
 *           and a wild access reads or writes physical memory, Linux's
 *           included.  A bad selector is what i386 does fault on.
 *           x86_64: a load from the non-canonical 0x8000000000000000
 *           (error code 0).
 *  14  #PF  x86_64 only: a load from 0x00007f0000000000, canonical with
 *           4- and 5-level paging and far above the RAM the kernel's
 *           identity map covers: CR2 = that address.
 *
 * Output, one line each, which the tests read:
 *	fault_payload: call N raises <name>
 *	fault_payload: call N ok
 *	fault_payload: previous call M faulted: vector V error=0x... at 0x...
 *	fault_payload: payload_fault: vector V in call N
 */
#include <kit/kit.h>

#ifndef FAULT_VECTOR
#error "build with EXTRA_CFLAGS=-DFAULT_VECTOR=0|6|13|14"
#endif

static unsigned int calls;	/* image memory: counts across `kexec -e` */

static void raise_fault(void)
{
#if FAULT_VECTOR == 0
	__asm__ volatile("xorl %%ecx, %%ecx\n\tdivl %%ecx" : : "a"(1), "d"(0) : "ecx");
#elif FAULT_VECTOR == 6
	__asm__ volatile("ud2");
#elif FAULT_VECTOR == 13 && defined(__x86_64__)
	__asm__ volatile("movabsq $0x8000000000000000, %%rax\n\tmovq (%%rax), %%rax" : : : "rax");
#elif FAULT_VECTOR == 13
	__asm__ volatile("movl $0x80, %%eax\n\tmovl %%eax, %%es" : : : "eax", "memory");
#elif FAULT_VECTOR == 14 && defined(__x86_64__)
	__asm__ volatile("movabsq $0x00007f0000000000, %%rax\n\tmovq (%%rax), %%rax" : : : "rax");
#else
#error "FAULT_VECTOR: 0, 6, 13, or (x86_64) 14"
#endif
}

void payload_fault(const struct kit_fault *fault)
{
	kit_printf("fault_payload: payload_fault: vector %u in call %u\n",
		   (unsigned int)fault->vector, fault->call);
}

int payload_main(const struct kit_entry_state *entry)
{
	const struct kit_fault *previous = kit_previous_call_fault();

	(void)entry;
	if (++calls != kit_calls)
		kit_printf("fault_payload: call %u but kit_calls=%u\n", calls, kit_calls);
	if (previous)
		kit_printf("fault_payload: previous call %u faulted: vector %u error=0x%x at "
			   KIT_REG_FMT "\n", previous->call, (unsigned int)previous->vector,
			   (unsigned int)previous->error, previous->ip);
	if (calls % 2) {
		kit_printf("fault_payload: call %u raises %s\n", calls,
			   kit_exception_name(FAULT_VECTOR));
		raise_fault();
		kit_printf("fault_payload: call %u: no fault\n", calls);
		return 1;
	}
	kit_printf("fault_payload: call %u ok\n", calls);
	return 0;
}
