/*
 * kit/entry.h - what the kernel hands a physical-mode payload, and the
 * function a payload provides.
 *
 * The i386 kernel (arch/x86/kernel/relocate_kernel_32.S) enters _start with
 * a `call`: 32-bit protected mode, paging off, CS=0x60 DS=ES=SS=0x68 (flat,
 * cached), GDTR and IDTR invalid, IF=0, DF=0, CR4=0, ESP = swap page + 0xffc,
 * [ESP] = return address.  The trampoline (i386/entry.S) records that state,
 * as received, in kit_entry before it changes anything, then calls
 * payload_main() on its own stack with its own GDT and IDT loaded.
 *
 * Every field is 32 bits; selectors and descriptor-table limits are
 * zero-extended.  The KIT_ES_* offsets are shared with the assembler.
 */
#ifndef KIT_ENTRY_H
#define KIT_ENTRY_H

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

#ifndef __ASSEMBLER__
#include <stdint.h>
#include <stddef.h>

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
_Static_assert(offsetof(struct kit_entry_state, cs) == KIT_ES_CS, "kit_entry_state");
_Static_assert(offsetof(struct kit_entry_state, gdtr_base) == KIT_ES_GDTR_BASE, "kit_entry_state");
_Static_assert(offsetof(struct kit_entry_state, ret) == KIT_ES_RET, "kit_entry_state");
_Static_assert(sizeof(struct kit_entry_state) == KIT_ES_SIZE, "kit_entry_state");

/*
 * Written by the user; called once per `kexec -e`, with the state of that
 * entry.  Runs with IF=0 on a 16 KiB stack inside the image.  The return
 * value is ignored (reserved).  When it returns, the trampoline restores the
 * kernel's state and hands control back; the next `kexec -e` calls it again.
 *
 * Only memory inside the image is the payload's: the kernel swaps the
 * image's pages in before the call and out after it, so globals persist from
 * one call to the next, and a write anywhere else lands in the running
 * kernel's memory.  No floating point: the x87/SSE registers hold the state
 * of the task that ran `kexec -e`, and the kernel does not save them.  Do
 * not load FS or GS: their cached bases are the kernel's per-CPU data,
 * which the trampoline cannot restore.  Paging, CR4, DS/ES/SS it does undo.
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
