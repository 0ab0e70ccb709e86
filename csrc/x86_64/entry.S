/*
 * x86_64/entry.S - the trampoline between relocate_kernel and payload_main().
 *
 * The contract (arch/x86/kernel/relocate_kernel_64.S of Linux 6.12,
 * identity_mapped, with preserve_context): the kernel swaps the image's
 * pages in, then
 *	popq %rdx; leaq PAGE_SIZE(%r10), %rsp; call *%rdx
 * so _start runs in 64-bit mode with paging on: CR3 = the kexec page table
 * (all RAM identity mapped, the control page too), CR4 = PAE (+ LA57 if the
 * kernel used it; no OSFXSR: SSE faults), CR0 with WP/AM/TS/EM clear,
 * RFLAGS = 0x2 (IF=0, DF=0).  CS=0x10 and DS=ES=SS=FS=GS=0x18 with the
 * kernel's descriptors still cached (machine_kexec() loads them just
 * before it invalidates GDTR and IDTR: base 0, limit 0).  RSP = swap page +
 * 0xff8 and [RSP] = the return address inside the control page (identity
 * mapped).  [RSP+8] is the page after the swap page: not ours.  The swap
 * page itself is scratch while we run, so words below RSP may be used.
 *
 * When we come back the kernel does
 *	movq 0(%rsp), %rbp		(the peer's re-entry point)
 * then loads CR3 with its page table, swaps the pages back, goes back to
 * its virtual mapping and returns %rbp as image->start: the next `kexec -e`
 * calls it.  So we return with RSP where it was, _start in the return slot,
 * CR3 again a table that maps the control page, and the selectors the
 * kernel had (with flat descriptors cached: our GDT is swapped out by then).
 * Linux 6.12 reloads its GDT itself after the return ("x86/kexec: Restore
 * GDT on return from ::preserve_context kexec"), so no patch is needed.
 *
 * Everything here is linked below 2 GiB (code model small, no PIC): the
 * kernel's identity map makes link address = physical address.
 */
#include <kit/entry.h>
#include <kit/desc.h>

#define KIT_STACK_SIZE	16384

	.code64
	.section .text.entry, "ax", @progbits
	.globl	_start
	.type	_start, @function
_start:
	/*
	 * Record the state as received.  Only MOVs until RFLAGS is saved, so
	 * the flags are still the kernel's.
	 */
	movq	%rax, kit_entry + KIT_ES_RAX
	movq	%rbx, kit_entry + KIT_ES_RBX
	movq	%rcx, kit_entry + KIT_ES_RCX
	movq	%rdx, kit_entry + KIT_ES_RDX
	movq	%rsi, kit_entry + KIT_ES_RSI
	movq	%rdi, kit_entry + KIT_ES_RDI
	movq	%rbp, kit_entry + KIT_ES_RBP
	movq	%rsp, kit_entry + KIT_ES_RSP
	movq	%r8, kit_entry + KIT_ES_R8
	movq	%r9, kit_entry + KIT_ES_R9
	movq	%r10, kit_entry + KIT_ES_R10
	movq	%r11, kit_entry + KIT_ES_R11
	movq	%r12, kit_entry + KIT_ES_R12
	movq	%r13, kit_entry + KIT_ES_R13
	movq	%r14, kit_entry + KIT_ES_R14
	movq	%r15, kit_entry + KIT_ES_R15
	pushfq				/* into the swap page, below the return slot */
	popq	kit_entry + KIT_ES_RFLAGS
	movq	(%rsp), %rax
	movq	%rax, kit_entry + KIT_ES_RET
	movq	%cr0, %rax
	movq	%rax, kit_entry + KIT_ES_CR0
	movq	%cr3, %rax
	movq	%rax, kit_entry + KIT_ES_CR3
	movq	%cr4, %rax
	movq	%rax, kit_entry + KIT_ES_CR4
	xorl	%eax, %eax		/* selectors are 16 bits: zero-extend */
	movw	%cs, %ax
	movq	%rax, kit_entry + KIT_ES_CS
	movw	%ds, %ax
	movq	%rax, kit_entry + KIT_ES_DS
	movw	%es, %ax
	movq	%rax, kit_entry + KIT_ES_ES
	movw	%fs, %ax
	movq	%rax, kit_entry + KIT_ES_FS
	movw	%gs, %ax
	movq	%rax, kit_entry + KIT_ES_GS
	movw	%ss, %ax
	movq	%rax, kit_entry + KIT_ES_SS
	sgdt	kernel_gdtr		/* kept as-is for lgdt on the way back */
	sidt	kernel_idtr
	movzwq	kernel_gdtr, %rax
	movq	%rax, kit_entry + KIT_ES_GDTR_LIMIT
	movq	kernel_gdtr + 2, %rax
	movq	%rax, kit_entry + KIT_ES_GDTR_BASE
	movzwq	kernel_idtr, %rax
	movq	%rax, kit_entry + KIT_ES_IDTR_LIMIT
	movq	kernel_idtr + 2, %rax
	movq	%rax, kit_entry + KIT_ES_IDTR_BASE

	/* A new call: count it; no fault is being handled (kit/fault.h). */
	incl	kit_calls
	movl	$0, kit_fault_nesting

	/*
	 * Our GDT has 64-bit code at 0x10 and flat data at 0x18, the kernel's
	 * own selectors: reloading changes no selector.  FS and GS are left
	 * alone: a selector load would overwrite FS_BASE/GS_BASE (the kernel
	 * restores them from its saved context, but a payload has no business
	 * with them).  In 64-bit mode there is no far jump with an immediate:
	 * CS is reloaded with a far return.
	 */
	lgdt	kit_gdt_ptr
	call	kit_reload_segments
	movl	$KIT_DATA_SEL, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	movq	$kit_stack_top, %rsp	/* inside the image, 16-byte aligned */
	cld				/* the C ABI wants DF=0 (it already is) */
	call	kit_load_idt		/* exceptions are reported from here on */

	movq	$kit_entry, %rdi	/* RSP 16-byte aligned at the call (SysV) */
	call	payload_main		/* int payload_main(const struct kit_entry_state *) */
	movl	%eax, %edi		/* its return value, for the result channel */
	call	kit_call_returned	/* void kit_call_returned(int): kit/call.h */

	/* A load without KEXEC_PRESERVE_CONTEXT enters with 0 in the return
	 * slot: there is no kernel to go back to. Say so and halt. */
	cmpq	$0, kit_entry + KIT_ES_RET
	jne	kit_leave
	call	kit_no_return

	/*
	 * kit_leave: back to the kernel's state, after payload_main returned
	 * or after a fault (traps.S jumps here from its fault stack, the
	 * payload's C frames abandoned: kit/fault.h).  Everything below comes
	 * from kit_entry, nothing from the stack or registers we arrive with.
	 * Whatever the payload did to the CPU mode is undone while our IDT can
	 * still report a fault (which cannot loop: kit/fault.h): our GDT and
	 * CS again (the payload may have loaded its own), the kernel's data
	 * selectors, then CR0, CR4, CR3 (the identity map the return address
	 * is reached through).  Long mode itself cannot be left and re-entered
	 * here; a payload that leaves it must come back to it before returning.
	 */
	.globl	kit_leave
kit_leave:
	cli
	lgdt	kit_gdt_ptr
	call	kit_reload_segments
	movq	kit_entry + KIT_ES_DS, %rax
	movl	%eax, %ds
	movq	kit_entry + KIT_ES_ES, %rax
	movl	%eax, %es
	movq	kit_entry + KIT_ES_SS, %rax
	movl	%eax, %ss
	movq	kit_entry + KIT_ES_CR0, %rax
	movq	%rax, %cr0
	movq	kit_entry + KIT_ES_CR4, %rax
	movq	%rax, %cr4
	movq	kit_entry + KIT_ES_CR3, %rax
	movq	%rax, %cr3

	/* From here on: no segment load, no fault (the tables are the kernel's
	 * invalid ones again); the cached segments carry us home. */
	lidt	kernel_idtr
	lgdt	kernel_gdtr
	movq	kit_entry + KIT_ES_RBX, %rbx
	movq	kit_entry + KIT_ES_RCX, %rcx
	movq	kit_entry + KIT_ES_RDX, %rdx
	movq	kit_entry + KIT_ES_RSI, %rsi
	movq	kit_entry + KIT_ES_RDI, %rdi
	movq	kit_entry + KIT_ES_RBP, %rbp
	movq	kit_entry + KIT_ES_R8, %r8
	movq	kit_entry + KIT_ES_R9, %r9
	movq	kit_entry + KIT_ES_R10, %r10
	movq	kit_entry + KIT_ES_R11, %r11
	movq	kit_entry + KIT_ES_R12, %r12
	movq	kit_entry + KIT_ES_R13, %r13
	movq	kit_entry + KIT_ES_R14, %r14
	movq	kit_entry + KIT_ES_R15, %r15
	movq	kit_entry + KIT_ES_RSP, %rsp	/* swap page + 0xff8: the return slot */
	pushq	kit_entry + KIT_ES_RFLAGS	/* scratch word below the slot */
	popfq

	/*
	 * Re-entry protocol: the kernel takes the word in the return slot, after
	 * its call returns, as our re-entry point.  Leave _start there and jump
	 * to the return address, RSP unchanged.  (A plain `ret` would leave the
	 * next `kexec -e` jumping to whatever lies above the swap page.)
	 */
	movq	(%rsp), %rax
	movq	$_start, (%rsp)
	jmp	*%rax
	.size	_start, . - _start

/*
 * CS = KIT_CODE_SEL through a far return (64-bit mode has no `ljmp $sel,
 * $addr`).  Uses the current stack (the swap page on entry: scratch) and RAX.
 */
	.text
	.type	kit_reload_segments, @function
kit_reload_segments:
	popq	%rax			/* our return address */
	pushq	$KIT_CODE_SEL
	pushq	%rax
	lretq
	.size	kit_reload_segments, . - kit_reload_segments

	.section .rodata
	.balign	8
kit_gdt:
	.quad	0				/* 0x00: null */
	.quad	KIT_DESC_CODE32_FLAT		/* 0x08: the kernel's KERNEL32_CS */
	.quad	KIT_DESC_CODE64			/* 0x10: KERNEL_CS */
	.quad	KIT_DESC_DATA32_FLAT		/* 0x18: KERNEL_DS */
	.quad	KIT_DESC_CODE16_THUNK		/* 0x20: kit_bios_call */
	.quad	KIT_DESC_DATA16			/* 0x28 */
kit_gdt_end:
	.balign	8
	.skip	6				/* align the base field */
	.globl	kit_gdt_ptr
kit_gdt_ptr:
	.word	kit_gdt_end - kit_gdt - 1
	.quad	kit_gdt

	.bss
	.balign	8
	.globl	kit_entry
	.type	kit_entry, @object
kit_entry:
	.skip	KIT_ES_SIZE
	.size	kit_entry, KIT_ES_SIZE
	.skip	6
kernel_gdtr:				/* the kernel's GDTR/IDTR, as sgdt/sidt stored them */
	.skip	10
	.skip	6
kernel_idtr:
	.skip	10
	.balign	16
kit_stack:
	.skip	KIT_STACK_SIZE
	.globl	kit_stack_top
kit_stack_top:

	.section .note.GNU-stack, "", @progbits
