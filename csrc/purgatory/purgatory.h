/*
 * purgatory.h - the contract between purgatory.ro and its loader
 * (kexec_py/purgatory.py).
 *
 * Every parameter is a global symbol of exactly the size below, kept in .data
 * (PURGATORY_PARAM) so that it has bytes in the object file for the loader to
 * patch.  A symbol in .bss would have none: the loader refuses to patch it.
 */
#ifndef PURGATORY_H
#define PURGATORY_H

/* The Linux boot protocol's 32-bit and 64-bit entries want these selectors
 * (Documentation/arch/x86/boot.rst, "32-bit boot protocol", "64-bit boot
 * protocol"). */
#define BOOT_CS			0x10
#define BOOT_DS			0x18

/* Offsets in struct purgatory_entry_regs, for entry32.S and entry64.S: one
 * machine word (4 or 8 bytes) per register. */
#ifdef __x86_64__
#define REG_SIZE		8
#else
#define REG_SIZE		4
#endif
#define REGS_AX			(0 * REG_SIZE)
#define REGS_BX			(1 * REG_SIZE)
#define REGS_CX			(2 * REG_SIZE)
#define REGS_DX			(3 * REG_SIZE)
#define REGS_SI			(4 * REG_SIZE)
#define REGS_DI			(5 * REG_SIZE)
#define REGS_SP			(6 * REG_SIZE)
#define REGS_BP			(7 * REG_SIZE)
#define REGS_IP			(8 * REG_SIZE)

#define PURGATORY_STACK_SIZE	1280	/* deepest path (main -> sha256_final -> _block): ~720 bytes */

#ifndef __ASSEMBLER__
#include <stdint.h>

#define PURGATORY_PARAM		__attribute__((section(".data"), used))
#define SHA256_REGIONS		16
#define JUMP_BACK_PAGE_SIZE	4096

/* What purgatory_jump_back_copy points at (the payload of a setup_data node the
 * loader linked into the next kernel's zero page): the page holding the
 * jump-back entry, and that page as it is now.  An x86_64 kernel enters its
 * kexec images on an identity map of its own RAM and of the image's segments
 * only; the caller kernel's re-entry page is neither, so the way back loads it
 * as a segment of these same bytes (kexec_py/jump_back.py). */
struct purgatory_jump_back_page {
	uint64_t addr;
	uint8_t bytes[JUMP_BACK_PAGE_SIZE];
};

/* What the next kernel is entered with: si = boot_params, ip = its 32-bit
 * (i386) or 64-bit (x86_64) entry.  sp = 0 keeps purgatory's own stack.
 * Words are unsigned long: 4 bytes on i386, 8 on x86_64, and so below. */
struct purgatory_entry_regs {
	unsigned long ax, bx, cx, dx, si, di, sp, bp, ip;
};

struct purgatory_sha256_region {
	unsigned long start;
	unsigned long len;
};

extern struct purgatory_entry_regs purgatory_entry_regs;
extern struct purgatory_sha256_region purgatory_sha256_regions[SHA256_REGIONS];
extern uint8_t purgatory_sha256_digest[32];
extern unsigned long purgatory_cmdline_end;
extern unsigned long purgatory_jump_back_copy;
extern uint16_t purgatory_serial_port;

/* Set by entry32.S/entry64.S: the word at [esp]/[rsp] on entry (the caller's
 * re-entry point). */
extern unsigned long purgatory_jump_back_entry;

void purgatory_main(void);
void purgatory_halt(void) __attribute__((noreturn));	/* entry*.S: cli; hlt forever */

_Static_assert(sizeof(struct purgatory_entry_regs) == 9 * REG_SIZE, "entry_regs layout");
_Static_assert(sizeof(struct purgatory_sha256_region) == 2 * REG_SIZE, "sha256 region layout");
#endif /* __ASSEMBLER__ */

#endif /* PURGATORY_H */
