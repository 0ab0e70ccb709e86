/*
 * x86_64/bios.S - kit_bios_enter: from long mode to the real-mode thunk
 * (lib/bios16.S, already copied to KIT_BIOS_THUNK) and back.
 *
 * Long mode is left the way the architecture allows: a far return to a
 * 32-bit code segment (compatibility mode), CR0.PG off (which clears
 * EFER.LMA), EFER.LME off.  The way back sets EFER.LME and CR0.PG again
 * with CR4 (PAE, LA57 if the kernel used it) and CR3 as they were, then
 * far-jumps to 64-bit code.  CR4.PCIDE forbids clearing PG, so it is off
 * for the trip and restored at the end.  All of this code and its data lie
 * below 2 GiB and are identity mapped (the kernel's map, or the shim's).
 */
#include <kit/desc.h>

#define MSR_EFER	0xc0000080
#define EFER_LME	0x100
#define CR0_PG		0x80000000
#define CR4_PCIDE	0x20000

	.text
	.code64
	.globl	kit_bios_enter, kit_bios_back32
	.type	kit_bios_enter, @function
kit_bios_enter:
	pushq	%rbp
	pushq	%rbx
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	pushfq
	movq	%rsp, saved_rsp
	movq	%cr3, %rax
	movq	%rax, saved_cr3
	movq	%cr4, %rax
	movq	%rax, saved_cr4
	andq	$~CR4_PCIDE, %rax
	movq	%rax, %cr4
	lgdt	kit_gdt_ptr		/* the selectors below are the kit's */
	pushq	$KIT_CODE32_SEL
	pushq	$1f
	lretq
	.code32
1:	movl	$KIT_DATA_SEL, %eax	/* compatibility mode */
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	movl	%cr0, %eax
	andl	$~CR0_PG, %eax		/* leaves long mode */
	movl	%eax, %cr0
	movl	$MSR_EFER, %ecx
	rdmsr
	andl	$~EFER_LME, %eax
	wrmsr
	ljmp	$KIT_CODE16_SEL, $0	/* the thunk's first byte */

kit_bios_back32:
	/* from the thunk: 32-bit protected mode, the kit's GDT loaded */
	movl	$KIT_DATA_SEL, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	xorl	%eax, %eax
	movl	%eax, %fs
	movl	%eax, %gs
	movl	saved_cr3, %eax
	movl	%eax, %cr3
	movl	$MSR_EFER, %ecx
	rdmsr
	orl	$EFER_LME, %eax
	wrmsr
	movl	%cr0, %eax
	orl	$CR0_PG, %eax		/* CR4.PAE is still set: long mode again */
	movl	%eax, %cr0
	ljmp	$KIT_CODE_SEL, $2f
	.code64
2:	movq	saved_cr4, %rax
	movq	%rax, %cr4
	movq	saved_rsp, %rsp
	popfq
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbx
	popq	%rbp
	ret
	.size	kit_bios_enter, . - kit_bios_enter

	.bss
	.balign	8
saved_rsp:
	.skip	8
saved_cr3:
	.skip	8
saved_cr4:
	.skip	8

	.section .note.GNU-stack, "", @progbits
