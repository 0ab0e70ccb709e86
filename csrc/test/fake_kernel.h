/* test/fake_kernel.h - layout shared by fake_kernel.S and fake_kernel.c. */
#ifndef FAKE_KERNEL_H
#define FAKE_KERNEL_H

#define SWAP_PAGE		0x00300000	/* ESP = SWAP_PAGE + 0xffc in the payload */
#define KERNEL_CS		0x60
#define KERNEL_DS		0x68
#define KERNEL_CS64		0x10	/* x86_64 Linux: __KERNEL_CS, __KERNEL_DS */
#define KERNEL_DS64		0x18
#define KERNEL_PERCPU		0xd8
#define PERCPU_BASE		0x00ab0000	/* base of the 0xd8 descriptor */
#define PERCPU_MARK_OFFSET	0x100

/* struct jump_result: the CPU state right after the payload returned */
#define JR_REENTRY	0
#define JR_ESP		4
#define JR_EBX		8
#define JR_ESI		12
#define JR_EDI		16
#define JR_EBP		20
#define JR_EFLAGS	24
#define JR_GDTR		30	/* 16-bit limit, then 32-bit base at 32 */
#define JR_IDTR		38	/* 16-bit limit, then 32-bit base at 40 */
#define JR_CR0		44
#define JR_CR3		48
#define JR_CR4		52
#define JR_CS		56
#define JR_DS		60
#define JR_ES		64
#define JR_SS		68
#define JR_FS		72
#define JR_FS_MARK	76

/* struct jump_result64: the same after a 64-bit payload (kexec_jump64) */
#define JR64_REENTRY	0
#define JR64_RSP	8
#define JR64_RBX	16
#define JR64_RBP	24
#define JR64_RSI	32
#define JR64_RDI	40
#define JR64_R8		48	/* r8..r15 at 48..104 */
#define JR64_RFLAGS	112
#define JR64_GDTR	126	/* 16-bit limit, then 64-bit base at 128 */
#define JR64_IDTR	142	/* 16-bit limit, then 64-bit base at 144 */
#define JR64_CR0	152
#define JR64_CR3	160
#define JR64_CR4	168
#define JR64_CS		176
#define JR64_DS		184
#define JR64_ES		192
#define JR64_SS		200

#ifndef __ASSEMBLER__
#include <stdint.h>

struct jump_result64 {
	uint64_t reentry, rsp, rbx, rbp, rsi, rdi, r8_15[8], rflags;
	uint16_t pad0[3], gdtr_limit;
	uint64_t gdtr_base;
	uint16_t pad1[3], idtr_limit;
	uint64_t idtr_base;
	uint64_t cr0, cr3, cr4, cs, ds, es, ss;
} __attribute__((aligned(8)));

_Static_assert(__builtin_offsetof(struct jump_result64, gdtr_limit) == JR64_GDTR, "jump_result64");
_Static_assert(__builtin_offsetof(struct jump_result64, idtr_limit) == JR64_IDTR, "jump_result64");
_Static_assert(__builtin_offsetof(struct jump_result64, cr0) == JR64_CR0, "jump_result64");
_Static_assert(__builtin_offsetof(struct jump_result64, ss) == JR64_SS, "jump_result64");

/* 64-bit: what relocate_kernel_64.S does, from a long-mode excursion */
uint32_t kexec_jump64(uint32_t entry, struct jump_result64 *r);
extern uint32_t kexec_pml4[1024];	/* CR3 of the excursion: RAM below 1 GiB identity mapped */

struct jump_result {
	uint32_t reentry, esp, ebx, esi, edi, ebp, eflags;
	uint16_t pad0, gdtr_limit;
	uint32_t gdtr_base;
	uint16_t pad1, idtr_limit;
	uint32_t idtr_base;
	uint32_t cr0, cr3, cr4, cs, ds, es, ss, fs, fs_mark;
};

_Static_assert(__builtin_offsetof(struct jump_result, gdtr_limit) == JR_GDTR, "jump_result");
_Static_assert(__builtin_offsetof(struct jump_result, idtr_limit) == JR_IDTR, "jump_result");
_Static_assert(__builtin_offsetof(struct jump_result, fs_mark) == JR_FS_MARK, "jump_result");

uint32_t kexec_jump(uint32_t entry, struct jump_result *r);
extern uint32_t plain_jump;
#endif
#endif
