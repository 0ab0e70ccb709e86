/*
 * kit/fault.h - what happens when the payload takes a CPU exception.
 *
 * The kernel's state was saved on entry (kit_entry), and a divide error or a
 * stray pointer in the payload says nothing about Linux's memory.  So on any
 * exception (vectors 0-31 but NMI) while its IDT is loaded, the kit
 *   1. records the fault in kit_last_fault,
 *   2. prints one report on the serial console:
 *	kit: exception 13 at EIP=0x0100004a (#GP general protection) error=0x00000078
 *	kit: eax=... ebx=... ecx=... edx=...
 *	kit: esi=... edi=... ebp=... esp=...
 *	kit: cs=0x0060 eflags=0x00010002 cr0=... cr2=... cr3=... cr4=...
 *	kit: call 1 abandoned after the fault; returning to the kernel
 *     (RIP and r8-r15 on x86_64; " error=0x..." only for the vectors that
 *     push an error code, " cr2=0x..." on the first line for #PF),
 *   3. calls payload_fault() if the payload defines it,
 *   4. abandons payload_main's C frame and takes the trampoline's normal way
 *      home: the kernel's CR0/CR3/CR4, GDTR/IDTR, registers, stack and flags,
 *      then the re-entry protocol (_start in the return slot).  `kexec -e`
 *      returns as after a plain return, and the next one calls payload_main
 *      again, from the top, on a fresh stack.
 * An exception while that is going on (in the report, in payload_fault, on
 * the way home) is not unwound again: the kit prints
 *	kit: exception 6 at EIP=0x... (#UD invalid opcode) while handling exception 0; halted
 * and halts (interrupts off), rather than looping.  Without a kernel to go
 * back to (a load without --load-preserve-context) it halts after the report.
 */
#ifndef KIT_FAULT_H
#define KIT_FAULT_H

#include <stdint.h>
#include <kit/entry.h>

struct kit_fault {
	kit_reg_t vector;	/* 0-31 */
	kit_reg_t error;	/* the CPU's error code; 0 for vectors without one */
	kit_reg_t ip;		/* EIP/RIP pushed by the CPU: the faulting instruction
				   (for traps, #BP #OF #DB, the one after it) */
	kit_reg_t sp;		/* ESP/RSP when the exception was taken */
	kit_reg_t flags;	/* EFLAGS/RFLAGS then */
	kit_reg_t cr2;		/* the faulting address for #PF (CR2 as found otherwise) */
	uint32_t call;		/* kit_calls of the call that faulted; 0: no fault yet */
	uint32_t count;		/* faults so far, over all calls */
};

/*
 * The last fault, kept in the image like all its data, so payload_main can
 * read it on its next call (and a result channel can report it): call and
 * count tell whether and when it happened.
 */
extern struct kit_fault kit_last_fault;

/* Calls of payload_main so far, this one included (1 on the first `kexec -e`). */
extern volatile uint32_t kit_calls;

/* The fault that ended the previous call, or NULL if that call returned. */
static inline const struct kit_fault *kit_previous_call_fault(void)
{
	return kit_last_fault.count && kit_last_fault.call + 1 == kit_calls ? &kit_last_fault : 0;
}

/*
 * Optional, written by the user: called once per fault, after the report,
 * before the kit unwinds; for cleanup that cannot wait for the next call
 * (stop a device the payload started, note the fault in its own data).  It
 * runs on the kit's 8 KiB fault stack, interrupts off, with the kit's GDT
 * and IDT and whatever paging the payload had set up; it must return (the
 * kit then goes home); a fault inside it halts the machine.
 */
void payload_fault(const struct kit_fault *fault) __attribute__((weak));

#endif /* KIT_FAULT_H */
