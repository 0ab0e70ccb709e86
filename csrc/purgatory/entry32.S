/*
 * entry32.S - purgatory_start, where relocate_kernel (i386) calls the image.
 *
 * On entry: 32-bit protected mode, paging off, IF=0, CS=0x60 DS/ES/SS=0x68
 * with flat descriptors cached, but GDTR and IDTR point at nothing: loading a
 * segment register now would triple-fault, so our GDT goes in first.
 * ESP = top of the kernel's swap page and [ESP] = the return address, which
 * for a preserve-context jump is the caller kernel's re-entry point; the word
 * above it is not ours.
 *
 * Every absolute address below is an R_386_32 relocation the loader resolves
 * for the physical load address (paging is off: linear = physical).
 */
#include "purgatory.h"

	.text
	.code32
	.globl	purgatory_start
	.type	purgatory_start, @function
purgatory_start:
	/* First thing: keep the return address (jump-back entry). */
	movl	(%esp), %eax
	movl	%eax, purgatory_jump_back_entry

	/* Our GDT, then reload every segment register from it.  lgdt reads
	 * its operand through DS, whose cached flat descriptor still works. */
	lgdt	gdt_desc
	ljmp	$BOOT_CS, $1f
1:	movl	$BOOT_DS, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	movl	%eax, %fs
	movl	%eax, %gs
	movl	$stack_end, %esp
	cld

	call	purgatory_main		/* returns only when the images verified */

	/* Enter the next kernel the way the 32-bit boot protocol asks:
	 * CS=__BOOT_CS, DS/ES/SS=__BOOT_DS (loaded above), IF=0, and the
	 * general registers from purgatory_entry_regs. */
	cli
	movl	purgatory_entry_regs + REGS_SP, %eax
	testl	%eax, %eax
	jz	2f			/* esp = 0: stay on our stack */
	movl	%eax, %esp
2:	movl	purgatory_entry_regs + REGS_BX, %ebx
	movl	purgatory_entry_regs + REGS_CX, %ecx
	movl	purgatory_entry_regs + REGS_DX, %edx
	movl	purgatory_entry_regs + REGS_SI, %esi
	movl	purgatory_entry_regs + REGS_DI, %edi
	movl	purgatory_entry_regs + REGS_BP, %ebp
	movl	purgatory_entry_regs + REGS_AX, %eax
	jmp	*purgatory_entry_regs + REGS_IP
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
	.quad	0x00cf9b000000ffff	/* 0x10 __BOOT_CS: flat 4 GiB, 32-bit code, accessed */
	.quad	0x00cf93000000ffff	/* 0x18 __BOOT_DS: flat 4 GiB, data, accessed */
gdt_end:
	.balign	4
	.word	0			/* pad: keeps the base 4-byte aligned */
gdt_desc:
	.word	gdt_end - gdt - 1
	.long	gdt

	/* The stack gets a page of its own, away from the code: QEMU (TCG)
	 * treats every store to a page that holds translated code as possible
	 * self-modifying code and takes its slow path, which made the SHA-256
	 * of a 25 MB initrd take ~100 s instead of ~1 s.  (Real CPUs also
	 * dislike stores next to code, at cache-line granularity.) */
	.bss
	.balign	4096
stack:
	.skip	PURGATORY_STACK_SIZE
stack_end:

	.section .note.GNU-stack, "", @progbits
