/*
 * lib/bios.c - kit_bios_call (kit/bios.h): the low pages, the PICs and the
 * registers around the trip that <arch>/bios.S and lib/bios16.S make.
 */
#include <kit/bios.h>
#include <kit/cpu.h>
#include <kit/io.h>
#include <kit/string.h>

#define PIC1_DATA	0x21
#define PIC2_DATA	0xa1
#define CR0_PG		0x80000000u

void kit_bios_enter(void);
void kit_load_idt(void);
extern char kit_bios16_start[], kit_bios16_end[];
extern char kit_bios16_regs[], kit_bios16_int[], kit_bios16_gdtr[], kit_bios16_back[];
extern char kit_bios_back32[];
extern const struct {
	uint16_t limit;
	kit_reg_t base;
} __attribute__((packed)) kit_gdt_ptr;

uint8_t kit_bios_buffer[KIT_BIOS_BOUNCE_SIZE];
/* What Linux had in the three low pages while we use them. */
static uint8_t saved_low[KIT_BIOS_LOW_SIZE];

/* Where a label of the blob lands once it is copied to KIT_BIOS_THUNK. */
static void *thunk(const char *label)
{
	return (void *)(uintptr_t)(KIT_BIOS_THUNK + (label - kit_bios16_start));
}

static int can_leave(void)
{
#ifdef __x86_64__
	return kit_read_cr3() < 0x100000000ull;
#else
	return !(kit_read_cr0() & CR0_PG);
#endif
}

int kit_bios_call(uint8_t intno, struct kit_bios_regs *regs)
{
	void *low = (void *)(uintptr_t)KIT_BIOS_LOW;
	uint8_t mask1, mask2;
	uint32_t back = (uint32_t)(uintptr_t)kit_bios_back32;
	uint16_t limit = kit_gdt_ptr.limit;
	uint32_t base = (uint32_t)kit_gdt_ptr.base;

	if (!can_leave())
		return -1;
	memcpy(saved_low, low, KIT_BIOS_LOW_SIZE);
	memcpy(thunk(kit_bios16_start), kit_bios16_start, (size_t)(kit_bios16_end - kit_bios16_start));
	memcpy(thunk(kit_bios16_regs), regs, sizeof(*regs));
	*(uint8_t *)thunk(kit_bios16_int) = intno;
	memcpy(thunk(kit_bios16_gdtr), &limit, 2);
	memcpy((char *)thunk(kit_bios16_gdtr) + 2, &base, 4);
	memcpy(thunk(kit_bios16_back), &back, 4);
	memcpy((void *)(uintptr_t)KIT_BIOS_BOUNCE, kit_bios_buffer, KIT_BIOS_BOUNCE_SIZE);
	mask1 = inb(PIC1_DATA);
	mask2 = inb(PIC2_DATA);
	outb(PIC1_DATA, 0xff);
	outb(PIC2_DATA, 0xff);

	kit_bios_enter();

	kit_load_idt();
	outb(PIC2_DATA, mask2);
	outb(PIC1_DATA, mask1);
	memcpy(regs, thunk(kit_bios16_regs), sizeof(*regs));
	memcpy(kit_bios_buffer, (void *)(uintptr_t)KIT_BIOS_BOUNCE, KIT_BIOS_BOUNCE_SIZE);
	memcpy(low, saved_low, KIT_BIOS_LOW_SIZE);
	return 0;
}
