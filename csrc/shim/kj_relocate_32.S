/* SPDX-License-Identifier: GPL-2.0 */
/*
 * i386 relocation code: the kernel's relocate_kernel_32.S contract for a
 * preserve-context image, run by the driver.
 *
 * kj_relocate(control VA, in %eax: the kernel is built with -mregparm=3)
 * runs in module text (the "stub"): it saves the kernel's CPU state into the
 * control page, loads the flat kernel selectors and then invalid GDT/IDT (as
 * machine_kexec does), switches to the driver's page table (which maps this
 * page at this address and the control page at its physical address) and
 * jumps to the copy of kj_blob_start in the control page.
 *
 * The blob turns paging off and enters the image exactly as the kernel
 * would: 32-bit protected mode, paging off, CS 0x60, DS/ES/SS 0x68, CR4 0,
 * EFLAGS 0, ESP = swap page + 0xffc with the return address at [ESP]. When
 * the image comes back there, [ESP] holds its re-entry point: the next jump
 * enters there. Unlike relocate_kernel_32 it turns paging back on with the
 * kernel's own CR4 (PAE kernels included) and reloads the GDT before any
 * segment register, so the return does not triple-fault.
 */
#include <linux/linkage.h>
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
	pushl	%ebx
	pushl	%ebp
	pushl	%esi
	pushl	%edi
	pushfl
	cli
	movl	%eax, %edi		/* control page, kernel virtual */
	movl	%esp, KJ_K_SP(%edi)
	movl	%cr0, %eax
	movl	%eax, KJ_K_CR0(%edi)
	movl	%cr3, %eax
	movl	%eax, KJ_K_CR3(%edi)
	movl	%cr4, %eax
	movl	%eax, KJ_K_CR4(%edi)
	sgdt	KJ_K_GDT(%edi)
	sidt	KJ_K_IDT(%edi)
	movw	%ds, KJ_K_DS(%edi)
	movw	%es, KJ_K_ES(%edi)
	movw	%ss, KJ_K_SS(%edi)
	movw	%fs, KJ_K_FS(%edi)
	movw	%gs, KJ_K_GS(%edi)

	/* cache flat descriptors, then drop the tables: machine_kexec_32's
	 * load_segments() reloads DS, ES and SS; FS and GS keep the kernel's
	 * selectors (the image must not reload them: the GDT is gone) */
	movl	$__KERNEL_DS, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	lidt	KJ_ZERO_DESC(%edi)
	lgdt	KJ_ZERO_DESC(%edi)

	movl	KJ_PA_CONTROL(%edi), %ebx
	leal	(kj_identity - kj_blob_start)(%ebx), %ecx
	leal	PAGE_SIZE(%ebx), %esp	/* the control page's stack, mapped in the new table */
	movl	KJ_PA_TABLE(%edi), %eax
	movl	%eax, %cr3		/* this page is mapped here in both tables */
	jmp	*%ecx

	/* From the blob, paging on, on the driver's table: eax = kernel CR3, edi = control VA */
SYM_INNER_LABEL(kj_stub_return, SYM_L_GLOBAL)
	movl	%eax, %cr3
	lgdt	KJ_K_GDT(%edi)		/* the GDT before any selector: the 6.1 bug */
	lidt	KJ_K_IDT(%edi)
	movw	KJ_K_SS(%edi), %ss
	movw	KJ_K_DS(%edi), %ds
	movw	KJ_K_ES(%edi), %es
	movw	KJ_K_FS(%edi), %fs	/* per-CPU data and the stack canary */
	movw	KJ_K_GS(%edi), %gs
	movl	KJ_K_SP(%edi), %esp
	popfl
	popl	%edi
	popl	%esi
	popl	%ebp
	popl	%ebx
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
	call	1f
1:	popl	%ebx
	subl	$(1b - kj_blob_start), %ebx	/* the control page */
	leal	PAGE_SIZE(%ebx), %esp
	movl	%cr0, %eax
	andl	$~(X86_CR0_PG | X86_CR0_AM | X86_CR0_WP | X86_CR0_TS | X86_CR0_EM), %eax
	orl	$X86_CR0_PE, %eax
	movl	%eax, %cr0		/* paging off */
	jmp	2f
2:	xorl	%eax, %eax
	movl	%eax, %cr4
	movl	%eax, %cr3
	pushl	$0
	popfl
	movl	KJ_HEAD(%ebx), %eax
	movl	KJ_PA_SWAP(%ebx), %edx
	call	kj_swap_pages

	movl	KJ_PA_SWAP(%ebx), %esp
	addl	$PAGE_SIZE, %esp
	movl	KJ_ENTRY(%ebx), %eax
	call	*%eax

	/* back: [ESP] is the peer's re-entry point */
	movl	0(%esp), %ebp
	call	3f
3:	popl	%ebx
	subl	$(3b - kj_blob_start), %ebx
	leal	PAGE_SIZE(%ebx), %esp
	movl	%ebp, KJ_ENTRY(%ebx)
	pushl	$0
	popfl
	movl	KJ_HEAD(%ebx), %eax
	movl	KJ_PA_SWAP(%ebx), %edx
	call	kj_swap_pages

	/* EFER first (NXE: PAE entries with NX set), then CR4 (PAE decides
	 * how CR3 is read), CR3, and paging on with the kernel's CR0 */
	cmpl	$0, KJ_HAS_EFER(%ebx)
	je	4f
	movl	$MSR_EFER, %ecx
	movl	KJ_K_EFER(%ebx), %eax
	movl	KJ_K_EFER+4(%ebx), %edx
	wrmsr
4:	movl	KJ_K_CR4(%ebx), %eax
	movl	%eax, %cr4
	movl	KJ_PA_TABLE(%ebx), %eax
	movl	%eax, %cr3
	movl	KJ_K_CR0(%ebx), %eax
	movl	%eax, %cr0
	movl	KJ_K_CR3(%ebx), %eax
	movl	KJ_VA_CONTROL(%ebx), %edi
	movl	KJ_STUB_RETURN(%ebx), %ecx
	jmp	*%ecx

/*
 * Swap the destination and source pages of the page list (kimage entries):
 * eax = first entry, edx = swap page. Keeps ebx and ebp.
 */
kj_swap_pages:
	pushl	%ebx
	pushl	%ebp
	movl	%edx, %ebp		/* swap page */
	xorl	%edx, %edx		/* destination */
	xorl	%ebx, %ebx		/* next entry */
	movl	%eax, %ecx
	jmp	2f
1:	movl	(%ebx), %ecx
	addl	$4, %ebx
2:	movl	%ecx, %eax
	andl	$PAGE_MASK, %eax
	testb	$KJ_IND_DESTINATION, %cl
	jz	3f
	movl	%eax, %edx
	jmp	1b
3:	testb	$KJ_IND_INDIRECTION, %cl
	jz	4f
	movl	%eax, %ebx
	jmp	1b
4:	testb	$KJ_IND_DONE, %cl
	jnz	9f
	testb	$KJ_IND_SOURCE, %cl
	jz	1b
	movl	%eax, %esi		/* source -> swap */
	movl	%ebp, %edi
	movl	$(PAGE_SIZE / 4), %ecx
	rep movsl
	movl	%edx, %esi		/* destination -> source */
	movl	%eax, %edi
	movl	$(PAGE_SIZE / 4), %ecx
	rep movsl
	movl	%ebp, %esi		/* swap -> destination */
	movl	%edx, %edi
	movl	$(PAGE_SIZE / 4), %ecx
	rep movsl
	addl	$PAGE_SIZE, %edx
	jmp	1b
9:	popl	%ebp
	popl	%ebx
	ret
	.globl	kj_blob_end
kj_blob_end:
