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
 *
 * kexec_jump64 does what relocate_kernel_64.S (Linux 6.12) does instead, for
 * an x86_64 payload: from a long-mode excursion (RAM below 1 GiB identity
 * mapped, CR4 = PAE), DS/ES/SS/FS/GS = 0x18, GDTR and IDTR invalid,
 * RFLAGS = 2, RSP = swap page + 0x1000 then `call`, and after the return
 * `movq 0(%rsp),%rbp`.  It then reloads its GDT (as 6.12 does) and goes
 * back to 32-bit protected mode.  Needs qemu-system-x86_64.
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

/*
 * uint32_t kexec_jump64(uint32_t entry, struct jump_result64 *r): one call
 * into a 64-bit payload; returns the re-entry point read from the return slot.
 */
#define GARBAGE(n)	(0x1111111100000000 * n + 0xa0a0a000 + n)
	.globl	kexec_jump64
kexec_jump64:
	pushl	%ebx
	pushl	%esi
	pushl	%edi
	pushl	%ebp
	pushfl
	movl	28(%esp), %eax
	movl	%eax, result64		/* struct jump_result64 * */
	movl	%esp, saved_esp
	cli
	/* into long mode: PAE, our identity map, EFER.LME, paging */
	movl	$kexec_pml4, %eax
	movl	%eax, %cr3
	movl	$0x20, %eax		/* CR4.PAE, as identity_mapped leaves it */
	movl	%eax, %cr4
	movl	$0xc0000080, %ecx	/* EFER */
	rdmsr
	orl	$0x100, %eax		/* LME */
	wrmsr
	movl	24(%esp), %edx		/* entry (rdmsr/wrmsr use EDX) */
	movl	%cr0, %eax
	orl	$0x80000000, %eax
	movl	%eax, %cr0
	ljmp	$KERNEL_CS64, $1f
	.code64
1:	movl	$KERNEL_DS64, %eax	/* machine_kexec: load_segments() */
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	movl	%eax, %fs
	movl	%eax, %gs
	/* (absolute addresses through registers: this object is ELF32, which has
	 * no relocation for a 64-bit mode disp32) */
	movl	$null_ptr64, %eax
	lgdt	(%rax)			/* native_gdt_invalidate(), native_idt_invalidate() */
	lidt	(%rax)
	movl	%edx, %edx
	movl	$plain_jump, %ecx
	movl	(%rcx), %ecx
	pushq	$0
	popfq
	movl	$SWAP_PAGE + 0x1000, %esp
	jrcxz	2f
	pushq	$0			/* without preserve-context: return address 0 */
	pushq	%rdx
	ret
2:	movabsq	$GARBAGE(1), %rax	/* recognisable garbage in every register */
	movabsq	$GARBAGE(2), %rbx
	movabsq	$GARBAGE(3), %rcx
	movabsq	$GARBAGE(5), %rsi
	movabsq	$GARBAGE(6), %rdi
	movabsq	$GARBAGE(7), %rbp
	movabsq	$GARBAGE(8), %r8
	movabsq	$GARBAGE(9), %r9
	movabsq	$GARBAGE(10), %r10
	movabsq	$GARBAGE(11), %r11
	movabsq	$GARBAGE(12), %r12
	movabsq	$GARBAGE(13), %r13
	movabsq	$GARBAGE(14), %r14
	movabsq	$GARBAGE(15), %r15
	call	*%rdx
	/* what relocate_kernel_64 does first: take the peer's re-entry point */
	movq	0(%rsp), %rax
	pushq	%rdx			/* a scratch register, below the slot */
	movl	$result64, %edx
	movl	(%rdx), %edx
	movq	%rax, JR64_REENTRY(%rdx)
	leaq	8(%rsp), %rax
	movq	%rax, JR64_RSP(%rdx)
	movq	%rbx, JR64_RBX(%rdx)
	movq	%rbp, JR64_RBP(%rdx)
	movq	%rsi, JR64_RSI(%rdx)
	movq	%rdi, JR64_RDI(%rdx)
	movq	%r8, JR64_R8(%rdx)
	movq	%r9, JR64_R8 + 8(%rdx)
	movq	%r10, JR64_R8 + 16(%rdx)
	movq	%r11, JR64_R8 + 24(%rdx)
	movq	%r12, JR64_R8 + 32(%rdx)
	movq	%r13, JR64_R8 + 40(%rdx)
	movq	%r14, JR64_R8 + 48(%rdx)
	movq	%r15, JR64_R8 + 56(%rdx)
	pushfq
	popq	JR64_RFLAGS(%rdx)
	sgdt	JR64_GDTR(%rdx)
	sidt	JR64_IDTR(%rdx)
	movq	%cr0, %rax
	movq	%rax, JR64_CR0(%rdx)
	movq	%cr3, %rax
	movq	%rax, JR64_CR3(%rdx)
	movq	%cr4, %rax
	movq	%rax, JR64_CR4(%rdx)
	xorl	%eax, %eax
	movw	%cs, %ax
	movq	%rax, JR64_CS(%rdx)
	movw	%ds, %ax
	movq	%rax, JR64_DS(%rdx)
	movw	%es, %ax
	movq	%rax, JR64_ES(%rdx)
	movw	%ss, %ax
	movq	%rax, JR64_SS(%rdx)
	/* back: our GDT (6.12 reloads its own), 32-bit code, paging and LME off */
	movl	$gdt_ptr64, %eax
	lgdt	(%rax)
	movl	$3f, %eax
	pushq	$KERNEL_CS
	pushq	%rax
	lretq
	.code32
3:	movl	$KERNEL_DS, %ecx
	movl	%ecx, %ds
	movl	%ecx, %es
	movl	%ecx, %ss
	movl	$KERNEL_PERCPU, %ecx
	movl	%ecx, %fs
	xorl	%ecx, %ecx
	movl	%ecx, %gs
	movl	%cr0, %eax
	andl	$0x7fffffff, %eax
	movl	%eax, %cr0
	movl	$0xc0000080, %ecx
	rdmsr
	andl	$~0x100, %eax
	wrmsr
	xorl	%eax, %eax
	movl	%eax, %cr4
	movl	%eax, %cr3
	lgdt	gdt_ptr
	movl	saved_esp, %esp
	popfl
	popl	%ebp
	popl	%edi
	popl	%esi
	popl	%ebx
	movl	result64, %eax
	movl	JR64_REENTRY(%eax), %eax
	ret

	.data
	.balign	8
gdt:
	.fill	2, 8, 0
	.quad	0x00af9a000000ffff	/* 0x10 x86_64 __KERNEL_CS (L=1) */
	.quad	0x00cf92000000ffff	/* 0x18 x86_64 __KERNEL_DS */
	.fill	8, 8, 0
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
	.balign	8
	.skip	6
gdt_ptr64:				/* lgdt in 64-bit mode: 64-bit base */
	.word	gdt_end - gdt - 1
	.long	gdt, 0
	.skip	6
null_ptr64:
	.word	0
	.quad	0
result64:
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
	.balign	4096
	.globl	kexec_pml4
kexec_pml4:				/* filled by fake_main: PML4 -> PDPT -> 2 MiB pages */
	.skip	4096
	.globl	kexec_pdpt
kexec_pdpt:
	.skip	4096
	.globl	kexec_pd
kexec_pd:
	.skip	4096

	.section .note.GNU-stack, "", @progbits
