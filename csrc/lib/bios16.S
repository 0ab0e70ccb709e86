/*
 * lib/bios16.S - the real-mode half of kit_bios_call (kit/bios.h), the same
 * for both architectures.
 *
 * lib/bios.c copies this blob to KIT_BIOS_THUNK (0x7000) and patches its
 * data: the registers, the interrupt number (the immediate of its `int`),
 * the GDTR to reload and the 32-bit protected-mode address to go back to.
 * <arch>/bios.S then far-jumps to KIT_CODE16_SEL:0, 16-bit protected mode
 * with CS based at the blob, and the blob takes it from there: real mode,
 * the call, protected mode again, a far jump to kit_bios_back32.
 *
 * Everything is addressed relative to the blob's start: CS is 0x0700 in
 * real mode, and its data are reached through CS overrides (real mode does
 * not enforce read-only code segments), so the caller's DS and ES go to the
 * BIOS untouched.
 */
#include <kit/bios.h>
#include <kit/desc.h>

#define OFF(label)	((label) - kit_bios16_start)

	.section .rodata.kit_bios16, "a", @progbits
	.code16
	.globl	kit_bios16_start, kit_bios16_end
	.globl	kit_bios16_regs, kit_bios16_int, kit_bios16_gdtr, kit_bios16_back
kit_bios16_start:
	/* 16-bit protected mode (KIT_CODE16_SEL): give every data segment
	 * 64 KiB limits and a 16-bit stack, the hidden state real mode uses */
	movw	$KIT_DATA16_SEL, %ax
	movw	%ax, %ds
	movw	%ax, %es
	movw	%ax, %fs
	movw	%ax, %gs
	movw	%ax, %ss
	movl	%cr0, %eax
	andl	$~1, %eax		/* PE off (paging is already off) */
	movl	%eax, %cr0
	ljmpw	$(KIT_BIOS_THUNK >> 4), $OFF(1f)
1:	/* real mode */
	xorw	%ax, %ax
	movw	%ax, %ss
	movw	$KIT_BIOS_STACK_TOP, %sp
	movw	%ax, %fs		/* no stale protected-mode selector for */
	movw	%ax, %gs		/* a BIOS that saves and reloads them */
	lidtl	%cs:OFF(ivt_ptr)
	movw	%cs:OFF(kit_bios16_regs) + KIT_BR_ES, %es
	movl	%cs:OFF(kit_bios16_regs) + KIT_BR_EAX, %eax
	movl	%cs:OFF(kit_bios16_regs) + KIT_BR_EBX, %ebx
	movl	%cs:OFF(kit_bios16_regs) + KIT_BR_ECX, %ecx
	movl	%cs:OFF(kit_bios16_regs) + KIT_BR_EDX, %edx
	movl	%cs:OFF(kit_bios16_regs) + KIT_BR_ESI, %esi
	movl	%cs:OFF(kit_bios16_regs) + KIT_BR_EDI, %edi
	movl	%cs:OFF(kit_bios16_regs) + KIT_BR_EBP, %ebp
	movw	%cs:OFF(kit_bios16_regs) + KIT_BR_DS, %ds
	.byte	0xcd			/* int $N: N patched by lib/bios.c */
kit_bios16_int:
	.byte	0
	cli				/* whatever the BIOS left */
	movl	%eax, %cs:OFF(kit_bios16_regs) + KIT_BR_EAX
	movl	%ebx, %cs:OFF(kit_bios16_regs) + KIT_BR_EBX
	movl	%ecx, %cs:OFF(kit_bios16_regs) + KIT_BR_ECX
	movl	%edx, %cs:OFF(kit_bios16_regs) + KIT_BR_EDX
	movl	%esi, %cs:OFF(kit_bios16_regs) + KIT_BR_ESI
	movl	%edi, %cs:OFF(kit_bios16_regs) + KIT_BR_EDI
	movl	%ebp, %cs:OFF(kit_bios16_regs) + KIT_BR_EBP
	pushfl
	popl	%cs:OFF(kit_bios16_regs) + KIT_BR_EFLAGS
	movw	%ds, %cs:OFF(kit_bios16_regs) + KIT_BR_DS
	movw	%es, %cs:OFF(kit_bios16_regs) + KIT_BR_ES
	cld
	/* Back: the kit's GDT again (the BIOS may have loaded its own), PE on,
	 * and a far jump to 32-bit code (operand size 32: a 32-bit offset). */
	lgdtl	%cs:OFF(kit_bios16_gdtr)
	movl	%cr0, %eax
	orl	$1, %eax
	movl	%eax, %cr0
	.byte	0x66, 0xea		/* ljmpl $KIT_CODE32_SEL, $kit_bios_back32 */
kit_bios16_back:
	.long	0
	.word	KIT_CODE32_SEL

	.balign	4
kit_bios16_regs:
	.skip	KIT_BR_SIZE
	.word	0
ivt_ptr:
	.word	0x3ff
	.long	0
	.word	0
kit_bios16_gdtr:			/* limit, 32-bit base: the kit's GDT */
	.word	0
	.long	0
kit_bios16_end:

	.section .note.GNU-stack, "", @progbits
