/*
 * entry64.S - purgatory_start for x86_64, where relocate_kernel (64-bit) calls
 * the image.
 *
 * On entry: 64-bit mode on the kexec identity map (CR3 = the kernel's kexec
 * page table, which maps all RAM and every segment 1:1), IF=0, CS/SS still
 * the kernel's, but GDTR may point at a table the identity map does not hold
 * and there is no usable IDT: our GDT goes in before any segment load.
 * RSP = the kernel's swap page, and [RSP] = the return address, which for a
 * preserve-context jump is the caller kernel's re-entry point.
 *
 * The boot protocol's 64-bit entry (boot.rst, "64-bit boot protocol") wants
 * a GDT with flat __BOOT_CS (0x10, 64-bit code) and __BOOT_DS (0x18, data),
 * CS = __BOOT_CS, DS/ES/SS = __BOOT_DS, IF=0, paging on with the kernel, its
 * zero page and command line identity-mapped (the kexec map is), and
 * RSI = the zero page.  Built -mcmodel=large: every absolute address is an
 * R_X86_64_64 the loader resolves for the load address; %rip-relative ones
 * are R_X86_64_PC32.
 */
#include "purgatory.h"

	.text
	.code64
	.globl	purgatory_start
	.type	purgatory_start, @function
purgatory_start:
	/* First thing: keep the return address (jump-back entry). */
	movq	(%rsp), %rax
	movq	%rax, purgatory_jump_back_entry(%rip)

	/* Our GDT, then CS through a far return (no far jmp to an immediate
	 * in 64-bit mode) and the data selectors. */
	lgdt	gdt_desc(%rip)
	leaq	stack_end(%rip), %rsp
	pushq	$BOOT_CS
	leaq	1f(%rip), %rax
	pushq	%rax
	lretq
1:	movl	$BOOT_DS, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	movl	%eax, %fs
	movl	%eax, %gs
	cld

	call	purgatory_main		/* returns only when the images verified */

	/* Enter the next kernel: the general registers from
	 * purgatory_entry_regs, rsi = the zero page. */
	cli
	movq	purgatory_entry_regs + REGS_SP(%rip), %rax
	testq	%rax, %rax
	jz	2f			/* sp = 0: stay on our stack */
	movq	%rax, %rsp
2:	movq	purgatory_entry_regs + REGS_BX(%rip), %rbx
	movq	purgatory_entry_regs + REGS_CX(%rip), %rcx
	movq	purgatory_entry_regs + REGS_DX(%rip), %rdx
	movq	purgatory_entry_regs + REGS_SI(%rip), %rsi
	movq	purgatory_entry_regs + REGS_DI(%rip), %rdi
	movq	purgatory_entry_regs + REGS_BP(%rip), %rbp
	movq	purgatory_entry_regs + REGS_AX(%rip), %rax
	jmpq	*purgatory_entry_regs + REGS_IP(%rip)
	.size	purgatory_start, . - purgatory_start

	.globl	purgatory_halt
	.type	purgatory_halt, @function
purgatory_halt:
	cli
3:	hlt
	jmp	3b
	.size	purgatory_halt, . - purgatory_halt

	.section .rodata
	.balign	8
gdt:
	.quad	0			/* 0x00 null */
	.quad	0			/* 0x08 unused */
	.quad	0x00af9b000000ffff	/* 0x10 __BOOT_CS: flat, 64-bit code (L=1), accessed */
	.quad	0x00cf93000000ffff	/* 0x18 __BOOT_DS: flat 4 GiB, data, accessed */
gdt_end:
	.balign	8
	.skip	6			/* pad: keeps the base 8-byte aligned */
gdt_desc:
	.word	gdt_end - gdt - 1
	.quad	gdt

	/* The stack on a page of its own, away from the code (see entry32.S:
	 * TCG's self-modifying-code path). */
	.bss
	.balign	4096
stack:
	.skip	PURGATORY_STACK_SIZE
stack_end:

	.section .note.GNU-stack, "", @progbits
