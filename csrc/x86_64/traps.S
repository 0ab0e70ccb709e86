/*
 * x86_64/traps.S - the payload's IDT: one stub per exception vector.
 *
 * While the payload runs, the IDT points here instead of at nothing, so a
 * fault prints a report on the serial console and goes back to the kernel
 * (kit/fault.h), instead of triple-faulting (which resets the machine and
 * loses the running kernel without a word).  Gates are 64-bit interrupt gates on KIT_CODE_SEL, IST 0,
 * ring 0 to ring 0: the CPU aligns RSP to 16 and pushes SS, RSP, RFLAGS,
 * CS, RIP (and an error code for some vectors) on the current stack.
 */
#include <kit/desc.h>

	.code64
	.text

/* Vector 2: an NMI is not the payload's fault; count it and carry on. */
.macro	EXC_STUB vec
	.balign	16
kit_exc_\vec:
.if \vec == 2
	incl	kit_nmi_count
	iretq
.else
.if !(KIT_EXC_HAS_ERRCODE(\vec))
	pushq	$0			/* uniform frame: a zero error code */
.endif
	pushq	$\vec
	jmp	kit_exc_common
.endif
.endm

	.irp	v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	EXC_STUB \v
	.endr

/*
 * Frame for kit_exception(): the general registers (r15 first at the
 * lowest address), vector, error code, then what the CPU pushed (RIP, CS,
 * RFLAGS, RSP, SS).  The C code runs on a stack of its own: the faulting
 * one may be the problem.  When it returns, the payload's frames (on its
 * stack and ours) are abandoned: kit_leave (entry.S) takes the trampoline's
 * normal way home, which rebuilds everything from kit_entry.  (A nested
 * fault lands on the top of this stack again; its handler halts, it never
 * returns into the frames it overwrote.)
 */
kit_exc_common:
	pushq	%rax
	pushq	%rbx
	pushq	%rcx
	pushq	%rdx
	pushq	%rsi
	pushq	%rdi
	pushq	%rbp
	pushq	%r8
	pushq	%r9
	pushq	%r10
	pushq	%r11
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	movq	%rsp, %rdi
	movl	$KIT_DATA_SEL, %ecx	/* the payload may have left odd selectors */
	movl	%ecx, %ds
	movl	%ecx, %es
	movl	%ecx, %ss
	movq	$kit_exc_stack_top, %rsp
	cld
	call	kit_exception		/* returns unless it halts */
	jmp	kit_leave

/* Fill the IDT (each call: it costs nothing) and load it. */
	.globl	kit_load_idt
	.type	kit_load_idt, @function
kit_load_idt:
	xorl	%ecx, %ecx
	leaq	kit_idt, %rdx
1:	movq	kit_exc_stubs(,%rcx,8), %rax
	movw	%ax, (%rdx)
	movw	$KIT_CODE_SEL, 2(%rdx)
	movw	$KIT_GATE_INT64, 4(%rdx)
	shrq	$16, %rax
	movw	%ax, 6(%rdx)
	shrq	$16, %rax
	movl	%eax, 8(%rdx)
	movl	$0, 12(%rdx)
	addq	$KIT_IDT_GATE_SIZE, %rdx
	incl	%ecx
	cmpl	$KIT_IDT_ENTRIES, %ecx
	jb	1b
	lidt	kit_idt_ptr
	ret
	.size	kit_load_idt, . - kit_load_idt

	.section .rodata
	.balign	8
kit_exc_stubs:
	.irp	v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	.quad	kit_exc_\v
	.endr
	.skip	6				/* align the base field */
kit_idt_ptr:
	.word	KIT_IDT_ENTRIES * KIT_IDT_GATE_SIZE - 1
	.quad	kit_idt

	.bss
	.balign	16
	.globl	kit_idt
kit_idt:
	.skip	KIT_IDT_ENTRIES * KIT_IDT_GATE_SIZE
	.globl	kit_nmi_count
kit_nmi_count:
	.skip	4
	.balign	16
	.skip	8192			/* the report, and payload_fault() */
kit_exc_stack_top:

	.section .note.GNU-stack, "", @progbits
