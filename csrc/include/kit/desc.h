/*
 * kit/desc.h - the payload's own descriptor tables.
 *
 * The kernel enters with GDTR and IDTR pointing at nothing, so the first
 * segment load, exception or NMI would triple-fault.  The kit's GDT holds
 * flat code and data descriptors at the very selectors the kernel entered
 * with (__KERNEL_CS = 0x60, __KERNEL_DS = 0x68 on i386; 0x10 and 0x18 on
 * x86_64, where the code descriptor is a 64-bit one, L=1): reloading
 * CS/DS/ES/SS from it changes no selector, and the hidden descriptor caches
 * end up holding what the kernel's own GDT held.  That matters on the way
 * back: relocate_kernel keeps running on those cached segments after the
 * payload's pages (and with them this GDT) have been swapped out.
 *
 * The "accessed" bit is preset (type 0x9b/0x93, as the CPU leaves the
 * kernel's entries after their first load) so that loading a selector never
 * writes to the table.
 */
#ifndef KIT_DESC_H
#define KIT_DESC_H

/* base 0, limit 0xfffff pages, G=1 D=1, present, DPL 0 */
#define KIT_DESC_CODE32_FLAT	0x00cf9b000000ffff	/* execute/read, accessed */
#define KIT_DESC_DATA32_FLAT	0x00cf93000000ffff	/* read/write, accessed */
/* 64-bit code: L=1 D=0, present, DPL 0, execute/read, accessed */
#define KIT_DESC_CODE64		0x00af9b000000ffff
/*
 * kit_bios_call (kit/bios.h) on its way to real mode: 16-bit code based at
 * the low thunk (KIT_BIOS_THUNK = 0x7000), 16-bit data based at 0, both
 * with 64 KiB byte-granular limits and D/B=0, the hidden state real mode
 * expects (a 32-bit SS would make real-mode pushes use ESP).
 */
#define KIT_DESC_CODE16_THUNK	0x00009b007000ffff
#define KIT_DESC_DATA16		0x000093000000ffff

#ifdef __x86_64__
/*
 * The kernel's own GDT layout (arch/x86/include/asm/segment.h, 64-bit):
 * 0x08 KERNEL32_CS, 0x10 KERNEL_CS, 0x18 KERNEL_DS.  machine_kexec() loads
 * 0x18 into DS/ES/SS/FS/GS before it invalidates the GDT.
 */
#define KIT_CODE32_SEL	0x08	/* GDT index 1: compatibility mode, for kit_bios_call */
#define KIT_CODE_SEL	0x10	/* GDT index 2 */
#define KIT_DATA_SEL	0x18	/* GDT index 3 */
#define KIT_CODE16_SEL	0x20	/* GDT index 4: kit_bios_call */
#define KIT_DATA16_SEL	0x28	/* GDT index 5 */
#define KIT_GDT_ENTRIES	6
#define KIT_IDT_GATE_SIZE	16
#else
#define KIT_CODE_SEL	0x60	/* GDT index 12 */
#define KIT_CODE32_SEL	KIT_CODE_SEL	/* where kit_bios_call returns from real mode */
#define KIT_DATA_SEL	0x68	/* GDT index 13 */
#define KIT_CODE16_SEL	0x70	/* GDT index 14: kit_bios_call */
#define KIT_DATA16_SEL	0x78	/* GDT index 15 */
#define KIT_GDT_ENTRIES	16
#define KIT_IDT_GATE_SIZE	8
#endif

/* IDT: the 32 architectural exception vectors; a vector beyond the limit
 * (`int $0x80`, a stray interrupt) raises #GP, which is reported. */
#define KIT_IDT_ENTRIES	32
/* present, DPL 0, interrupt gate (IF cleared): 32-bit, or 64-bit in long mode */
#define KIT_GATE_INT32	0x8e00
#define KIT_GATE_INT64	0x8e00

/* Exceptions that push an error code. */
#define KIT_EXC_HAS_ERRCODE(v) \
	((v) == 8 || ((v) >= 10 && (v) <= 14) || (v) == 17 || (v) == 21 || (v) == 29 || (v) == 30)

#ifndef __ASSEMBLER__
#include <stdint.h>

/* Operand of lgdt/lidt/sgdt/sidt: 16-bit limit, then the base (32 or 64 bits). */
struct kit_desc_ptr {
	uint16_t limit;
	uintptr_t base;
} __attribute__((packed));

#ifdef __x86_64__
struct kit_idt_gate {
	uint16_t offset_lo;
	uint16_t selector;
	uint16_t type;		/* KIT_GATE_INT64, IST 0 */
	uint16_t offset_mid;
	uint32_t offset_hi;
	uint32_t reserved;
};
#else
struct kit_idt_gate {
	uint16_t offset_lo;
	uint16_t selector;
	uint16_t type;		/* KIT_GATE_INT32 */
	uint16_t offset_hi;
};
#endif

static inline struct kit_desc_ptr kit_sgdt(void)
{
	struct kit_desc_ptr p;
	__asm__ volatile("sgdt %0" : "=m"(p));
	return p;
}

static inline struct kit_desc_ptr kit_sidt(void)
{
	struct kit_desc_ptr p;
	__asm__ volatile("sidt %0" : "=m"(p));
	return p;
}

extern struct kit_idt_gate kit_idt[KIT_IDT_ENTRIES];
#endif /* __ASSEMBLER__ */
#endif /* KIT_DESC_H */
