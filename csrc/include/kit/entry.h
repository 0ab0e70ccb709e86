/*
 * kit/entry.h - what the kernel hands a physical-mode payload, and the
 * function a payload provides.
 *
 * i386 (arch/x86/kernel/relocate_kernel_32.S) enters _start with a `call`:
 * 32-bit protected mode, paging off, CS=0x60 DS=ES=SS=0x68 (flat, cached),
 * GDTR and IDTR invalid, IF=0, DF=0, CR4=0, ESP = swap page + 0xffc,
 * [ESP] = return address.
 *
 * x86_64 (arch/x86/kernel/relocate_kernel_64.S, Linux 6.12) enters it with a
 * `call` too: 64-bit mode, paging on with CR3 = the kexec page table (RAM
 * identity mapped), CR4 = PAE (and LA57 if the kernel used it: no SSE),
 * CR0.WP/AM/TS/EM clear, RFLAGS = 0x2 (IF=0, DF=0), CS=0x10, DS=ES=SS=FS=
 * GS=0x18 (cached from the kernel's GDT), GDTR and IDTR invalid, RSP = swap
 * page + 0xff8, [RSP] = return address.
 *
 * The trampoline (<arch>/entry.S) records that state, as received, in
 * kit_entry before it changes anything, then calls payload_main() on its
 * own stack with its own GDT and IDT loaded.
 *
 * Every field is a register's width (kit_reg_t: 32 bits on i386, 64 on
 * x86_64); selectors and descriptor-table limits are zero-extended.
 * KIT_REG_FMT prints one ("0x%08x" / "0x%016lx").  The KIT_ES_* offsets are
 * shared with the assembler.
 */
#ifndef KIT_ENTRY_H
#define KIT_ENTRY_H

#ifdef __x86_64__
#define KIT_ES_RAX		0x00
#define KIT_ES_RBX		0x08
#define KIT_ES_RCX		0x10
#define KIT_ES_RDX		0x18
#define KIT_ES_RSI		0x20
#define KIT_ES_RDI		0x28
#define KIT_ES_RBP		0x30
#define KIT_ES_RSP		0x38
#define KIT_ES_R8		0x40
#define KIT_ES_R9		0x48
#define KIT_ES_R10		0x50
#define KIT_ES_R11		0x58
#define KIT_ES_R12		0x60
#define KIT_ES_R13		0x68
#define KIT_ES_R14		0x70
#define KIT_ES_R15		0x78
#define KIT_ES_RFLAGS		0x80
#define KIT_ES_CR0		0x88
#define KIT_ES_CR3		0x90
#define KIT_ES_CR4		0x98
#define KIT_ES_CS		0xa0
#define KIT_ES_DS		0xa8
#define KIT_ES_ES		0xb0
#define KIT_ES_FS		0xb8
#define KIT_ES_GS		0xc0
#define KIT_ES_SS		0xc8
#define KIT_ES_GDTR_BASE	0xd0
#define KIT_ES_GDTR_LIMIT	0xd8
#define KIT_ES_IDTR_BASE	0xe0
#define KIT_ES_IDTR_LIMIT	0xe8
#define KIT_ES_RET		0xf0
#define KIT_ES_SIZE		0xf8
#else
#define KIT_ES_EAX		0x00
#define KIT_ES_EBX		0x04
#define KIT_ES_ECX		0x08
#define KIT_ES_EDX		0x0c
#define KIT_ES_ESI		0x10
#define KIT_ES_EDI		0x14
#define KIT_ES_EBP		0x18
#define KIT_ES_ESP		0x1c
#define KIT_ES_EFLAGS		0x20
#define KIT_ES_CR0		0x24
#define KIT_ES_CR3		0x28
#define KIT_ES_CR4		0x2c
#define KIT_ES_CS		0x30
#define KIT_ES_DS		0x34
#define KIT_ES_ES		0x38
#define KIT_ES_FS		0x3c
#define KIT_ES_GS		0x40
#define KIT_ES_SS		0x44
#define KIT_ES_GDTR_BASE	0x48
#define KIT_ES_GDTR_LIMIT	0x4c
#define KIT_ES_IDTR_BASE	0x50
#define KIT_ES_IDTR_LIMIT	0x54
#define KIT_ES_RET		0x58
#define KIT_ES_SIZE		0x5c
#endif

#ifndef __ASSEMBLER__
#include <stdint.h>
#include <stddef.h>

#ifdef __x86_64__
typedef uint64_t kit_reg_t;
#define KIT_REG_FMT	"0x%016lx"

struct kit_entry_state {
	kit_reg_t rax, rbx, rcx, rdx, rsi, rdi, rbp;
	kit_reg_t rsp;		/* the kernel's: swap page + 0xff8 */
	kit_reg_t r8, r9, r10, r11, r12, r13, r14, r15;
	kit_reg_t rflags;
	kit_reg_t cr0, cr3, cr4;
	kit_reg_t cs, ds, es, fs, gs, ss;
	kit_reg_t gdtr_base, gdtr_limit;
	kit_reg_t idtr_base, idtr_limit;
	kit_reg_t ret;		/* [rsp]: where the kernel resumes (identity mapped) */
};

_Static_assert(offsetof(struct kit_entry_state, r8) == KIT_ES_R8, "kit_entry_state");
_Static_assert(offsetof(struct kit_entry_state, rflags) == KIT_ES_RFLAGS, "kit_entry_state");
#else
typedef uint32_t kit_reg_t;
#define KIT_REG_FMT	"0x%08x"

struct kit_entry_state {
	uint32_t eax, ebx, ecx, edx, esi, edi, ebp;
	uint32_t esp;		/* the kernel's: swap page + 0xffc */
	uint32_t eflags;
	uint32_t cr0, cr3, cr4;
	uint32_t cs, ds, es, fs, gs, ss;
	uint32_t gdtr_base, gdtr_limit;
	uint32_t idtr_base, idtr_limit;
	uint32_t ret;		/* [esp]: where the kernel resumes (physical) */
};

_Static_assert(offsetof(struct kit_entry_state, eflags) == KIT_ES_EFLAGS, "kit_entry_state");
#endif
_Static_assert(offsetof(struct kit_entry_state, cs) == KIT_ES_CS, "kit_entry_state");
_Static_assert(offsetof(struct kit_entry_state, gdtr_base) == KIT_ES_GDTR_BASE, "kit_entry_state");
_Static_assert(offsetof(struct kit_entry_state, ret) == KIT_ES_RET, "kit_entry_state");
_Static_assert(sizeof(struct kit_entry_state) == KIT_ES_SIZE, "kit_entry_state");

/*
 * Written by the user; called once per `kexec -e`, with the state of that
 * entry.  Runs with IF=0 on a 16 KiB stack inside the image (x86_64: in
 * 64-bit mode on the kernel's identity map, code model small, so the image
 * must lie below 2 GiB).  The return value ends a `kexec --call`
 * (kit/call.h: non-zero fails it).  When it returns, the trampoline restores the
 * kernel's state and hands control back; the next `kexec -e` calls it again.
 * A CPU exception in it does the same after a report on the console, with
 * its C frame abandoned (kit/fault.h: kit_last_fault, payload_fault()).
 *
 * Only memory inside the image is the payload's: the kernel swaps the
 * image's pages in before the call and out after it, so globals persist from
 * one call to the next, and a write anywhere else lands in the running
 * kernel's memory.  No floating point: the x87/SSE registers hold the state
 * of the task that ran `kexec -e`, and the kernel does not save them.  Do
 * not load FS or GS: their cached bases are the kernel's per-CPU data,
 * which the trampoline cannot restore.  Paging, CR4, DS/ES/SS it does undo
 * (on x86_64: CR3 and CR4, not leaving long mode).
 */
int payload_main(const struct kit_entry_state *entry);

/* The state of the current entry (the same object payload_main receives). */
extern struct kit_entry_state kit_entry;

/* NMIs taken (and ignored) while the payload ran, over all calls. */
extern volatile uint32_t kit_nmi_count;

/* The image's first and one-past-last byte (page aligned), from payload.ld. */
extern char kit_image_start[], kit_image_end[];

#endif /* __ASSEMBLER__ */
#endif /* KIT_ENTRY_H */
