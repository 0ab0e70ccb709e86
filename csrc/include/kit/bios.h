/*
 * kit/bios.h - calling the PC BIOS from a payload: kit_bios_call().
 *
 * The BIOS's services are real-mode code behind the interrupt vector table.
 * kit_bios_call() leaves the payload's mode for real mode, runs `int N`
 * with the caller's registers, and comes back:
 *   i386:   protected mode -> 16-bit protected mode -> real mode -> back;
 *   x86_64: long mode -> compatibility mode -> paging off (long mode left)
 *           -> 16-bit protected mode -> real mode -> back the same way.
 *
 * What it needs below 1 MiB, three pages, it saves before the call and
 * restores after it, so nothing Linux keeps there is lost:
 *   0x6000-0x6fff  real-mode stack (SS:SP = 0000:7000)
 *   0x7000-0x7fff  the thunk: 16-bit code and its data (CS = 0700 in real mode)
 *   0x8000-0x8fff  the bounce buffer (KIT_BIOS_BOUNCE_SEG:0), for services that
 *                  read or write ES:DI; mirrored by kit_bios_buffer
 * It never writes the interrupt vector table (0-0x3ff), the BIOS data area
 * (0x400-0x4ff) or the extended BIOS data area (below 0xa0000, its segment
 * at 0x40e): they are the BIOS's own, which Linux keeps as it found them,
 * and the BIOS must find them as it left them.  What the BIOS itself writes
 * there or in its own memory (SeaBIOS: its stack at 0xe8000-0xe9fff, in the
 * reserved 0xa0000-0xfffff that Linux never uses) stays written.
 *
 * The rules of the trip: interrupts stay off (both PICs masked for its
 * duration, their masks restored; the kernel has its local APIC off while a
 * payload runs), the real-mode IDT is the IVT (base 0, limit 0x3ff), FS and
 * GS hold 0 afterwards (the kernel reloads them on return, see README), and
 * the kit's GDT and IDT are loaded again after every call (a BIOS that
 * switches modes itself, as SeaBIOS does, leaves its own GDTR behind).
 * i386 needs paging off (as the kernel enters the payload); x86_64 needs the
 * page table the kit was entered with (CR3 below 4 GiB, as the kernel's is:
 * 32-bit code reloads it).
 */
#ifndef KIT_BIOS_H
#define KIT_BIOS_H

#define KIT_BIOS_LOW		0x6000	/* the three pages, saved and restored */
#define KIT_BIOS_LOW_SIZE	0x3000
#define KIT_BIOS_STACK_TOP	0x7000
#define KIT_BIOS_THUNK		0x7000	/* KIT_DESC_CODE16_THUNK's base */
#define KIT_BIOS_BOUNCE		0x8000
#define KIT_BIOS_BOUNCE_SEG	(KIT_BIOS_BOUNCE >> 4)
#define KIT_BIOS_BOUNCE_SIZE	0x1000

/* struct kit_bios_regs, for the thunk */
#define KIT_BR_EAX	0
#define KIT_BR_EBX	4
#define KIT_BR_ECX	8
#define KIT_BR_EDX	12
#define KIT_BR_ESI	16
#define KIT_BR_EDI	20
#define KIT_BR_EBP	24
#define KIT_BR_EFLAGS	28
#define KIT_BR_DS	32
#define KIT_BR_ES	34
#define KIT_BR_SIZE	36

#ifndef __ASSEMBLER__
#include <stdint.h>
#include <stddef.h>

/* In: the registers `int N` is called with; out: as the BIOS returned them. */
struct kit_bios_regs {
	uint32_t eax, ebx, ecx, edx, esi, edi, ebp;
	uint32_t eflags;	/* out only: CF set is how most services fail */
	uint16_t ds, es;	/* segments; 0 means 0 (point ES at KIT_BIOS_BOUNCE_SEG) */
};
_Static_assert(offsetof(struct kit_bios_regs, eflags) == KIT_BR_EFLAGS, "kit_bios_regs");
_Static_assert(offsetof(struct kit_bios_regs, es) == KIT_BR_ES, "kit_bios_regs");
_Static_assert(sizeof(struct kit_bios_regs) == KIT_BR_SIZE, "kit_bios_regs");

#define KIT_EFLAGS_CF	0x1

/*
 * The bounce buffer's contents, in the image: copied to KIT_BIOS_BOUNCE
 * before the call and back after it, so a payload fills it before and reads
 * it after, as if the BIOS had written it directly.
 */
extern uint8_t kit_bios_buffer[KIT_BIOS_BOUNCE_SIZE];

/*
 * Call BIOS interrupt intno with *regs, then fill *regs with what it
 * returned.  Returns 0, or -1 without calling if the CPU is not in a state
 * the trip can start from (i386: paging on; x86_64: CR3 at or above 4 GiB).
 */
int kit_bios_call(uint8_t intno, struct kit_bios_regs *regs);

#endif /* __ASSEMBLER__ */
#endif /* KIT_BIOS_H */
