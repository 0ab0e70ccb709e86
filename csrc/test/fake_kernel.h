/* test/fake_kernel.h - layout shared by fake_kernel.S and fake_kernel.c. */
#ifndef FAKE_KERNEL_H
#define FAKE_KERNEL_H

#define SWAP_PAGE		0x00300000	/* ESP = SWAP_PAGE + 0xffc in the payload */
#define KERNEL_CS		0x60
#define KERNEL_DS		0x68
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

#ifndef __ASSEMBLER__
#include <stdint.h>

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
