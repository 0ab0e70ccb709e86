/*
 * test/fake_kernel.S - stands in for Linux in a QEMU check of the kit.
 *
 * A multiboot kernel (qemu -kernel) that does to a payload, passed as a
 * multiboot module, what relocate_kernel_32.S does on a preserve-context
 * `kexec -e`: GDTR and IDTR invalid, CR4=0, IF=0, DF=0, paging off,
 * CS=0x60 DS=ES=SS=0x68 cached flat, ESP = swap page + 0x1000 then `call`,
 * and after the return `movl 0(%esp),%ebp` as the peer's re-entry point.
 * It also checks what Linux silently relies on (see fake_kernel.c).
 * With "plain" on the command line it enters like a load without
 * preserve-context instead: `ret` into the image with 0 as return address.
 */
#include "fake_kernel.h"

	.section .multiboot, "a"
	.balign	4
	.long	0x1badb002, 0, -0x1badb002

	.text
	.globl	_start
_start:
	movl	$stack_top, %esp
	lgdt	gdt_ptr
	ljmp	$KERNEL_CS, $1f
1:	movl	$KERNEL_DS, %ecx
	movl	%ecx, %ds
	movl	%ecx, %es
	movl	%ecx, %ss
	movl	$KERNEL_PERCPU, %ecx	/* like i386 Linux: FS = per-CPU segment */
	movl	%ecx, %fs
	xorl	%ecx, %ecx
	movl	%ecx, %gs
	pushl	%ebx			/* multiboot info */
	pushl	%eax			/* multiboot magic */
	call	fake_main
2:	cli
	hlt
	jmp	2b

/*
 * uint32_t kexec_jump(uint32_t entry, struct jump_result *r): one call into
 * the payload; returns the re-entry point read from the return slot.
 */
	.globl	kexec_jump
kexec_jump:
	pushl	%ebx
	pushl	%esi
	pushl	%edi
	pushl	%ebp
	pushfl
	movl	24(%esp), %edx		/* entry */
	movl	%esp, saved_esp
	lgdt	null_ptr		/* machine_kexec: native_gdt_invalidate() */
	lidt	null_ptr
	xorl	%eax, %eax
	movl	%eax, %cr4
	movl	%eax, %cr3
	movl	plain_jump, %ecx
	pushl	$0			/* flags zero, IF=0; no arithmetic after this */
	popfl
	movl	$SWAP_PAGE + 0x1000, %esp
	jecxz	1f
	pushl	$0			/* without preserve-context: return address 0, */
	pushl	%edx			/* then `ret` into the image */
	ret
1:	movl	$0xaaaa0001, %eax	/* recognisable garbage */
	movl	$0xbbbb0002, %ebx
	movl	$0xcccc0003, %ecx
	movl	$0xeeee0005, %esi
	movl	$0xdddd0006, %edi
	movl	$0x99990007, %ebp
	call	*%edx
	/* what relocate_kernel does first: take the peer's re-entry point */
	movl	0(%esp), %eax
	/* record the state the payload left, before touching anything */
	movl	saved_esp, %edx
	movl	28(%edx), %edx		/* struct jump_result * */
	movl	%eax, JR_REENTRY(%edx)
	movl	%esp, JR_ESP(%edx)
	movl	%ebx, JR_EBX(%edx)
	movl	%esi, JR_ESI(%edx)
	movl	%edi, JR_EDI(%edx)
	movl	%ebp, JR_EBP(%edx)
	pushfl				/* below the return slot, as the kernel's call does */
	popl	JR_EFLAGS(%edx)
	sgdt	JR_GDTR(%edx)
	sidt	JR_IDTR(%edx)
	movl	%cr0, %ecx
	movl	%ecx, JR_CR0(%edx)
	movl	%cr3, %ecx
	movl	%ecx, JR_CR3(%edx)
	movl	%cr4, %ecx
	movl	%ecx, JR_CR4(%edx)
	xorl	%ecx, %ecx
	movw	%cs, %cx
	movl	%ecx, JR_CS(%edx)
	movw	%ds, %cx
	movl	%ecx, JR_DS(%edx)
	movw	%es, %cx
	movl	%ecx, JR_ES(%edx)
	movw	%ss, %cx
	movl	%ecx, JR_SS(%edx)
	movw	%fs, %cx
	movl	%ecx, JR_FS(%edx)
	movl	%fs:PERCPU_MARK_OFFSET, %ecx	/* FS's cached base must still be the per-CPU one */
	movl	%ecx, JR_FS_MARK(%edx)
	/* back to "kernel" state: its GDT again (the 6.1 fix does this too) */
	movl	saved_esp, %esp
	lgdt	gdt_ptr
	ljmp	$KERNEL_CS, $1f
1:	movl	$KERNEL_DS, %ecx
	movl	%ecx, %ds
	movl	%ecx, %es
	movl	%ecx, %ss
	popfl
	popl	%ebp
	popl	%edi
	popl	%esi
	popl	%ebx
	ret

	.data
	.balign	8
gdt:
	.fill	12, 8, 0
	.quad	0x00cf9a000000ffff	/* 0x60 __KERNEL_CS */
	.quad	0x00cf92000000ffff	/* 0x68 __KERNEL_DS */
	.fill	13, 8, 0
	.quad	0x00cf92ab0000ffff	/* 0xd8 per-CPU: base PERCPU_BASE = 0x00ab0000 */
gdt_end:
	.word	0
gdt_ptr:
	.word	gdt_end - gdt - 1
	.long	gdt
	.word	0
null_ptr:
	.word	0
	.long	0
saved_esp:
	.long	0
	.globl	plain_jump
plain_jump:				/* set by fake_main: "plain" on the command line */
	.long	0

	.bss
	.balign	16
	.skip	16384
stack_top:

	.section .note.GNU-stack, "", @progbits
