/*
 * i386/entry.S - the trampoline between relocate_kernel and payload_main().
 *
 * The contract (arch/x86/kernel/relocate_kernel_32.S, identity_mapped, with
 * preserve_context): the kernel swaps the image's pages in, then
 *	movl swap_page, %esp; addl $PAGE_SIZE, %esp; call *%edx
 * so _start runs in 32-bit protected mode, paging off (CR3=0), CR4=0,
 * IF=0, DF=0, CS=0x60 and DS=ES=SS=0x68 with flat descriptors still cached
 * from the kernel's GDT, GDTR and IDTR invalid (base 0, limit 0),
 * ESP = swap page + 0xffc and [ESP] = the physical return address inside the
 * control page.  [ESP+4] is the page after the swap page: not ours.  The
 * swap page itself is scratch while we run, so words below ESP may be used.
 *
 * When we come back the kernel does
 *	movl 0(%esp), %ebp		(the peer's re-entry point)
 * then swaps the pages back (rep movsl through DS/ES, stack on SS), turns
 * paging on and returns %ebp as image->start: the next `kexec -e` calls it.
 * So we return with ESP where it was and _start in the return slot, and by
 * then every segment register must hold a flat descriptor in its hidden
 * part, because neither our GDT (swapped out) nor the kernel's (GDTR is
 * invalid, and it lives at a virtual address) can be read again.
 */
#include <kit/entry.h>
#include <kit/desc.h>

#define KIT_STACK_SIZE	16384

	.code32
	.section .text.entry, "ax", @progbits
	.globl	_start
	.type	_start, @function
_start:
	/*
	 * Record the state as received.  Only MOVs until EFLAGS is saved, so
	 * the flags are still the kernel's; DS has base 0 and paging is off,
	 * so kit_entry's link address is where the store lands.
	 */
	movl	%eax, kit_entry + KIT_ES_EAX
	movl	%ebx, kit_entry + KIT_ES_EBX
	movl	%ecx, kit_entry + KIT_ES_ECX
	movl	%edx, kit_entry + KIT_ES_EDX
	movl	%esi, kit_entry + KIT_ES_ESI
	movl	%edi, kit_entry + KIT_ES_EDI
	movl	%ebp, kit_entry + KIT_ES_EBP
	movl	%esp, kit_entry + KIT_ES_ESP
	pushfl				/* into the swap page, below the return slot */
	popl	kit_entry + KIT_ES_EFLAGS
	movl	(%esp), %eax
	movl	%eax, kit_entry + KIT_ES_RET
	movl	%cr0, %eax
	movl	%eax, kit_entry + KIT_ES_CR0
	movl	%cr3, %eax
	movl	%eax, kit_entry + KIT_ES_CR3
	movl	%cr4, %eax
	movl	%eax, kit_entry + KIT_ES_CR4
	xorl	%eax, %eax		/* selectors are 16 bits: zero-extend */
	movw	%cs, %ax
	movl	%eax, kit_entry + KIT_ES_CS
	movw	%ds, %ax
	movl	%eax, kit_entry + KIT_ES_DS
	movw	%es, %ax
	movl	%eax, kit_entry + KIT_ES_ES
	movw	%fs, %ax
	movl	%eax, kit_entry + KIT_ES_FS
	movw	%gs, %ax
	movl	%eax, kit_entry + KIT_ES_GS
	movw	%ss, %ax
	movl	%eax, kit_entry + KIT_ES_SS
	sgdt	kernel_gdtr		/* kept as-is for lgdt on the way back */
	sidt	kernel_idtr
	movzwl	kernel_gdtr, %eax
	movl	%eax, kit_entry + KIT_ES_GDTR_LIMIT
	movl	kernel_gdtr + 2, %eax
	movl	%eax, kit_entry + KIT_ES_GDTR_BASE
	movzwl	kernel_idtr, %eax
	movl	%eax, kit_entry + KIT_ES_IDTR_LIMIT
	movl	kernel_idtr + 2, %eax
	movl	%eax, kit_entry + KIT_ES_IDTR_BASE

	/* A new call: count it; no fault is being handled (kit/fault.h). */
	incl	kit_calls
	movl	$0, kit_fault_nesting

	/*
	 * Our GDT has flat code at 0x60 and flat data at 0x68, the kernel's
	 * own selectors: reloading changes no selector, and the caches get the
	 * same flat descriptors the kernel had.  FS and GS are left alone:
	 * their hidden bases are the kernel's per-CPU and stack-canary areas,
	 * which it may use as soon as we return and which nobody could reload
	 * (a payload must not touch FS/GS either).
	 */
	lgdt	kit_gdt_ptr
	ljmp	$KIT_CODE_SEL, $1f
1:	movl	$KIT_DATA_SEL, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	movl	$kit_stack_top, %esp	/* inside the image, 16-byte aligned */
	cld				/* the C ABI wants DF=0 (it already is) */
	call	kit_load_idt		/* exceptions are reported from here on */

	subl	$12, %esp		/* keep ESP 16-byte aligned at the call */
	pushl	$kit_entry
	call	payload_main		/* int payload_main(const struct kit_entry_state *) */
	movl	%eax, (%esp)		/* its return value, for the result channel */
	call	kit_call_returned	/* void kit_call_returned(int): kit/call.h */
	addl	$16, %esp

	/* A load without KEXEC_PRESERVE_CONTEXT enters with 0 in the return
	 * slot: there is no kernel to go back to. Say so and halt. */
	cmpl	$0, kit_entry + KIT_ES_RET
	jne	kit_leave
	call	kit_no_return

	/*
	 * kit_leave: back to the kernel's state, after payload_main returned
	 * or after a fault (traps.S jumps here from its fault stack, the
	 * payload's C frames abandoned: kit/fault.h).  Everything below comes
	 * from kit_entry, nothing from the stack or registers we arrive with.
	 * Whatever the payload did to the CPU mode is undone while our IDT can
	 * still report a fault (which cannot loop: kit/fault.h): flat
	 * segments from our GDT (again: the payload may have loaded its own),
	 * then CR0 first (drops paging if the payload enabled it; this code
	 * must then be identity mapped), CR4, CR3.
	 */
	.globl	kit_leave
kit_leave:
	cli
	lgdt	kit_gdt_ptr
	ljmp	$KIT_CODE_SEL, $2f
2:	movl	$KIT_DATA_SEL, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	movl	kit_entry + KIT_ES_CR0, %eax
	movl	%eax, %cr0
	movl	kit_entry + KIT_ES_CR4, %eax
	movl	%eax, %cr4
	movl	kit_entry + KIT_ES_CR3, %eax
	movl	%eax, %cr3

	/* From here on: no segment load, no fault (the tables are the kernel's
	 * invalid ones again); the cached segments carry us home. */
	lidt	kernel_idtr
	lgdt	kernel_gdtr
	movl	kit_entry + KIT_ES_EBX, %ebx
	movl	kit_entry + KIT_ES_ECX, %ecx
	movl	kit_entry + KIT_ES_EDX, %edx
	movl	kit_entry + KIT_ES_ESI, %esi
	movl	kit_entry + KIT_ES_EDI, %edi
	movl	kit_entry + KIT_ES_EBP, %ebp
	movl	kit_entry + KIT_ES_ESP, %esp	/* swap page + 0xffc: the return slot */
	pushl	kit_entry + KIT_ES_EFLAGS	/* scratch word below the slot */
	popfl

	/*
	 * Re-entry protocol: the kernel takes the word in the return slot, after
	 * its call returns, as our re-entry point.  Leave _start there and jump
	 * to the return address, ESP unchanged.  (A plain `ret` would leave the
	 * next `kexec -e` jumping to whatever lies above the swap page.)
	 */
	movl	(%esp), %eax
	movl	$_start, (%esp)
	jmp	*%eax
	.size	_start, . - _start

	.section .rodata
	.balign	8
kit_gdt:
	.fill	KIT_CODE_SEL / 8, 8, 0		/* entries 0-11: null */
	.quad	KIT_DESC_CODE32_FLAT		/* 0x60 */
	.quad	KIT_DESC_DATA32_FLAT		/* 0x68 */
	.quad	KIT_DESC_CODE16_THUNK		/* 0x70: kit_bios_call */
	.quad	KIT_DESC_DATA16			/* 0x78 */
kit_gdt_end:
	.balign	4
	.word	0				/* align the base field */
	.globl	kit_gdt_ptr
kit_gdt_ptr:
	.word	kit_gdt_end - kit_gdt - 1
	.long	kit_gdt

	.bss
	.balign	4
	.globl	kit_entry
	.type	kit_entry, @object
kit_entry:
	.skip	KIT_ES_SIZE
	.size	kit_entry, KIT_ES_SIZE
	.word	0
kernel_gdtr:				/* the kernel's GDTR/IDTR, as sgdt/sidt stored them */
	.skip	6
	.word	0
kernel_idtr:
	.skip	6
	.balign	16
kit_stack:
	.skip	KIT_STACK_SIZE
	.globl	kit_stack_top
kit_stack_top:

	.section .note.GNU-stack, "", @progbits
