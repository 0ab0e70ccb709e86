/* SPDX-License-Identifier: GPL-2.0 */
/*
 * x86_64 relocation code: the kernel's relocate_kernel_64.S contract for a
 * preserve-context image, run by the driver.
 *
 * kj_relocate(control VA) runs in module text (the "stub"): it saves the
 * kernel's CPU state into the control page, loads the flat kernel data
 * selectors and then invalid GDT/IDT (as machine_kexec does: the image
 * finds them invalid and must bring its own), switches to the driver's page
 * table (which maps this page at this address) and jumps to the copy of
 * kj_blob_start in the control page, at its physical address.
 *
 * The blob then enters the image exactly as the kernel would: 64-bit mode on
 * an identity map of RAM, CS 0x10, DS/ES/SS 0x18, CR0.WP clear, CR4 = PAE
 * (+LA57), RFLAGS 0, RSP = swap page + 0xff8 with the return address at
 * [RSP]. When the image comes back there, [RSP] holds its re-entry point:
 * the next jump enters there (a peer kernel's jump-back helper enters at our
 * return address, on its own page table: so reload ours first).
 */
#include <linux/linkage.h>
#include <asm/ibt.h>
#include <asm/msr-index.h>
#include <asm/page_types.h>
#include <asm/processor-flags.h>
#include <asm/segment.h>
#include "kj_layout.h"

	.text
	.balign	PAGE_SIZE
	.globl	kj_stub_start
kj_stub_start:
SYM_FUNC_START(kj_relocate)
	pushq	%rbx
	pushq	%rbp
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	pushfq
	cli
	movq	%rsp, KJ_K_SP(%rdi)
	movq	%cr0, %rax
	movq	%rax, KJ_K_CR0(%rdi)
	movq	%cr3, %rax
	movq	%rax, KJ_K_CR3(%rdi)
	movq	%cr4, %rax
	movq	%rax, KJ_K_CR4(%rdi)
	sgdt	KJ_K_GDT(%rdi)
	sidt	KJ_K_IDT(%rdi)
	movw	%ds, KJ_K_DS(%rdi)
	movw	%es, KJ_K_ES(%rdi)
	movw	%ss, KJ_K_SS(%rdi)
	movw	%fs, KJ_K_FS(%rdi)
	movw	%gs, KJ_K_GS(%rdi)
	movl	$MSR_FS_BASE, %ecx
	rdmsr
	movl	%eax, KJ_K_FS_BASE(%rdi)
	movl	%edx, KJ_K_FS_BASE+4(%rdi)
	movl	$MSR_GS_BASE, %ecx
	rdmsr
	movl	%eax, KJ_K_GS_BASE(%rdi)
	movl	%edx, KJ_K_GS_BASE+4(%rdi)

	/* cache flat descriptors, then drop the tables (machine_kexec's load_segments) */
	movl	$__KERNEL_DS, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	movl	%eax, %fs
	movl	%eax, %gs
	lidt	KJ_ZERO_DESC(%rdi)
	lgdt	KJ_ZERO_DESC(%rdi)

	movq	KJ_PA_CONTROL(%rdi), %r8
	leaq	(kj_identity - kj_blob_start)(%r8), %rax
	movq	KJ_PA_TABLE(%rdi), %r9
	movq	%r9, %cr3		/* this page is mapped here in both tables */
	jmpq	*%rax

	/* From the blob, on the driver's table: rax = kernel CR3, rdi = control VA */
SYM_INNER_LABEL(kj_stub_return, SYM_L_GLOBAL)
	ENDBR
	movq	%rax, %cr3
	lgdt	KJ_K_GDT(%rdi)
	lidt	KJ_K_IDT(%rdi)
	movw	KJ_K_SS(%rdi), %ss
	movw	KJ_K_DS(%rdi), %ds
	movw	KJ_K_ES(%rdi), %es
	movw	KJ_K_FS(%rdi), %fs
	movw	KJ_K_GS(%rdi), %gs	/* selector loads clear the bases: now the bases */
	movl	$MSR_FS_BASE, %ecx
	movl	KJ_K_FS_BASE(%rdi), %eax
	movl	KJ_K_FS_BASE+4(%rdi), %edx
	wrmsr
	movl	$MSR_GS_BASE, %ecx
	movl	KJ_K_GS_BASE(%rdi), %eax
	movl	KJ_K_GS_BASE+4(%rdi), %edx
	wrmsr
	movq	KJ_K_SP(%rdi), %rsp
	popfq
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbp
	popq	%rbx
	RET
SYM_FUNC_END(kj_relocate)
	.globl	kj_stub_end
kj_stub_end:

/*
 * The blob: copied to the start of the control page and run there, at its
 * physical address. Position independent, no references outside itself.
 */
	.balign	16
	.globl	kj_blob_start
kj_blob_start:
kj_identity:
	ENDBR
	leaq	kj_blob_start(%rip), %r8	/* the control page */
	leaq	PAGE_SIZE(%r8), %rsp
	/* CR4 = PAE (+LA57): this also drops CET, which WP must outlive */
	movq	%cr4, %rax
	andq	$(X86_CR4_PAE | X86_CR4_LA57), %rax
	movq	%rax, %cr4
	movq	%cr0, %rax
	andq	$~(X86_CR0_AM | X86_CR0_WP | X86_CR0_TS | X86_CR0_EM), %rax
	orl	$(X86_CR0_PG | X86_CR0_PE), %eax
	movq	%rax, %cr0
	pushq	$0
	popfq
	movq	KJ_HEAD(%r8), %rdi
	movq	KJ_PA_SWAP(%r8), %rsi
	call	kj_swap_pages
	movq	%cr3, %rax		/* serialise after writing code pages */
	movq	%rax, %cr3
	pushq	$0
	popfq				/* RFLAGS 0 (bit 1 reads 1), as the kernel leaves it */

	movq	KJ_PA_SWAP(%r8), %rsp
	leaq	PAGE_SIZE(%rsp), %rsp
	movq	KJ_ENTRY(%r8), %rax
	call	*%rax

	/* back: [RSP] is the peer's re-entry point */
	movq	0(%rsp), %rbp
	leaq	kj_blob_start(%rip), %r8
	movq	KJ_PA_TABLE(%r8), %rax
	movq	%rax, %cr3
	leaq	PAGE_SIZE(%r8), %rsp
	movq	%rbp, KJ_ENTRY(%r8)
	pushq	$0
	popfq
	movq	KJ_HEAD(%r8), %rdi
	movq	KJ_PA_SWAP(%r8), %rsi
	call	kj_swap_pages

	/* EFER (a peer may have changed NXE or SCE), CR0 (WP) before CR4 (CET) */
	cmpq	$0, KJ_HAS_EFER(%r8)
	je	1f
	movl	$MSR_EFER, %ecx
	movl	KJ_K_EFER(%r8), %eax
	movl	KJ_K_EFER+4(%r8), %edx
	wrmsr
1:	movq	KJ_K_CR0(%r8), %rax
	movq	%rax, %cr0
	movq	KJ_K_CR4(%r8), %rax
	movq	%rax, %cr4
	movq	KJ_K_CR3(%r8), %rax
	movq	KJ_VA_CONTROL(%r8), %rdi
	movq	KJ_STUB_RETURN(%r8), %rdx
	jmpq	*%rdx

/*
 * Swap the destination and source pages of the page list (kimage entries):
 * rdi = first entry, rsi = swap page. Clobbers rax, rcx, rdx, rsi, rdi,
 * r9-r11.
 */
kj_swap_pages:
	movq	%rsi, %r10		/* swap page */
	xorl	%edx, %edx		/* destination */
	xorl	%r9d, %r9d		/* next entry */
	movq	%rdi, %rcx
	jmp	2f
1:	movq	(%r9), %rcx
	addq	$8, %r9
2:	movq	%rcx, %rax
	andq	$PAGE_MASK, %rax
	testb	$KJ_IND_DESTINATION, %cl
	jz	3f
	movq	%rax, %rdx
	jmp	1b
3:	testb	$KJ_IND_INDIRECTION, %cl
	jz	4f
	movq	%rax, %r9
	jmp	1b
4:	testb	$KJ_IND_DONE, %cl
	jnz	9f
	testb	$KJ_IND_SOURCE, %cl
	jz	1b
	movq	%rax, %r11		/* source */
	movq	%r11, %rsi		/* source -> swap */
	movq	%r10, %rdi
	movl	$(PAGE_SIZE / 8), %ecx
	rep movsq
	movq	%rdx, %rsi		/* destination -> source */
	movq	%r11, %rdi
	movl	$(PAGE_SIZE / 8), %ecx
	rep movsq
	movq	%r10, %rsi		/* swap -> destination */
	movq	%rdx, %rdi
	movl	$(PAGE_SIZE / 8), %ecx
	rep movsq
	addq	$PAGE_SIZE, %rdx
	jmp	1b
9:	ret
	.globl	kj_blob_end
kj_blob_end:
