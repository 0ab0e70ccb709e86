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

/* The Linux boot protocol's 32-bit entry wants these selectors
 * (Documentation/arch/x86/boot.rst, "32-bit boot protocol"). */
#define BOOT_CS			0x10
#define BOOT_DS			0x18

/* Offsets in struct purgatory_entry32_regs, for entry32.S. */
#define REGS_EAX		0
#define REGS_EBX		4
#define REGS_ECX		8
#define REGS_EDX		12
#define REGS_ESI		16
#define REGS_EDI		20
#define REGS_ESP		24
#define REGS_EBP		28
#define REGS_EIP		32

#define PURGATORY_STACK_SIZE	1280	/* deepest path (main -> sha256_final -> _block): ~720 bytes */

#ifndef __ASSEMBLER__
#include <stdint.h>

#define PURGATORY_PARAM		__attribute__((section(".data"), used))
#define SHA256_REGIONS		16

/* What the next kernel is entered with: esi = boot_params, eip = its 32-bit
 * entry.  esp = 0 keeps purgatory's own stack. */
struct purgatory_entry32_regs {
	uint32_t eax, ebx, ecx, edx, esi, edi, esp, ebp, eip;
};

struct purgatory_sha256_region {
	uint32_t start;
	uint32_t len;
};

extern struct purgatory_entry32_regs purgatory_entry32_regs;
extern struct purgatory_sha256_region purgatory_sha256_regions[SHA256_REGIONS];
extern uint8_t purgatory_sha256_digest[32];
extern uint32_t purgatory_cmdline_end;
extern uint16_t purgatory_serial_port;

/* Set by entry32.S: the word at [esp] on entry (the caller's re-entry point). */
extern uint32_t purgatory_jump_back_entry;

void purgatory_main(void);
void purgatory_halt(void) __attribute__((noreturn));	/* entry32.S: cli; hlt forever */
void serial_putc(char c);				/* serial.c */

_Static_assert(sizeof(struct purgatory_entry32_regs) == 36, "entry32_regs layout");
_Static_assert(sizeof(struct purgatory_sha256_region) == 8, "sha256 region layout");
#endif /* __ASSEMBLER__ */

#endif /* PURGATORY_H */
