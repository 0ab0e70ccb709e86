/*
 * i386/bios.S - kit_bios_enter: from the kit's 32-bit protected mode to the
 * real-mode thunk (lib/bios16.S, already copied to KIT_BIOS_THUNK) and back.
 * Paging is off, as the kernel entered us (lib/bios.c checks).
 */
#include <kit/desc.h>

	.code32
	.text
	.globl	kit_bios_enter, kit_bios_back32
	.type	kit_bios_enter, @function
kit_bios_enter:
	pushl	%ebp
	pushl	%ebx
	pushl	%esi
	pushl	%edi
	movl	%esp, saved_esp
	lgdt	kit_gdt_ptr		/* the selectors below are the kit's */
	ljmp	$KIT_CODE16_SEL, $0	/* the thunk's first byte */
kit_bios_back32:
	/* from the thunk: PE on, the kit's GDT loaded, CS = KIT_CODE32_SEL */
	movl	$KIT_DATA_SEL, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	xorl	%eax, %eax
	movl	%eax, %fs
	movl	%eax, %gs
	movl	saved_esp, %esp
	popl	%edi
	popl	%esi
	popl	%ebx
	popl	%ebp
	ret
	.size	kit_bios_enter, . - kit_bios_enter

	.bss
	.balign	4
saved_esp:
	.skip	4

	.section .note.GNU-stack, "", @progbits
