/*
 * kit/desc.h - the payload's own descriptor tables.
 *
 * The kernel enters with GDTR and IDTR pointing at nothing, so the first
 * segment load, exception or NMI would triple-fault.  The kit's GDT holds
 * flat 4 GiB code and data descriptors at the very selectors the kernel
 * entered with (__KERNEL_CS = 0x60, __KERNEL_DS = 0x68 on i386): reloading
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

#define KIT_CODE_SEL	0x60	/* GDT index 12 */
#define KIT_DATA_SEL	0x68	/* GDT index 13 */
#define KIT_GDT_ENTRIES	14

/* base 0, limit 0xfffff pages, G=1 D=1, present, DPL 0 */
#define KIT_DESC_CODE32_FLAT	0x00cf9b000000ffff	/* execute/read, accessed */
#define KIT_DESC_DATA32_FLAT	0x00cf93000000ffff	/* read/write, accessed */

/* IDT: the 32 architectural exception vectors; a vector beyond the limit
 * (`int $0x80`, a stray interrupt) raises #GP, which is reported. */
#define KIT_IDT_ENTRIES	32
#define KIT_GATE_INT32	0x8e00	/* present, DPL 0, 32-bit interrupt gate (IF cleared) */

/* Exceptions that push an error code. */
#define KIT_EXC_HAS_ERRCODE(v) \
	((v) == 8 || ((v) >= 10 && (v) <= 14) || (v) == 17 || (v) == 21 || (v) == 29 || (v) == 30)

#ifndef __ASSEMBLER__
#include <stdint.h>

/* Operand of lgdt/lidt/sgdt/sidt: 16-bit limit, then 32-bit base. */
struct kit_desc_ptr {
	uint16_t limit;
	uint32_t base;
} __attribute__((packed));

struct kit_idt_gate {
	uint16_t offset_lo;
	uint16_t selector;
	uint16_t type;		/* KIT_GATE_INT32 */
	uint16_t offset_hi;
};

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
