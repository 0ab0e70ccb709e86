/*
 * edd - a disk as the BIOS sees it, through the int 13h extensions (EDD):
 * AH=41h (are they there, which version), then AH=48h (drive parameters:
 * geometry, total sectors, bytes per sector).  The drive is --param
 * drive=N (BIOS number, default 0x80: the first hard disk).
 *
 * Result: "drive 0x80: EDD 0x30, N sectors of N bytes, C/H/S c/h/s"; with
 * --param json=1: {"drive": N, "version": N, "sectors": N,
 * "bytes_per_sector": N, "cylinders": N, "heads": N, "sectors_per_track": N}.
 */
#include <kit/kit.h>

struct edd_params {		/* int 13h AH=48h result buffer */
	uint16_t size;
	uint16_t flags;
	uint32_t cylinders;
	uint32_t heads;
	uint32_t sectors_per_track;
	uint64_t sectors;
	uint16_t bytes_per_sector;
} __attribute__((packed));

static uint32_t number_param(const char *name, uint32_t fallback)
{
	const char *s = kit_param(name);
	uint32_t v = 0, base = 10;

	if (!s || !*s)
		return fallback;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	for (; *s; s++)
		v = v * base + (uint32_t)(*s <= '9' ? *s - '0' : (*s | 0x20) - 'a' + 10);
	return v;
}

int payload_main(const struct kit_entry_state *entry)
{
	uint32_t drive = number_param("drive", 0x80);
	struct kit_bios_regs check = { .eax = 0x4100, .ebx = 0x55aa, .edx = drive };
	struct kit_bios_regs get = { .eax = 0x4800, .edx = drive, .ds = KIT_BIOS_BOUNCE_SEG, .esi = 0 };
	struct edd_params p;

	(void)entry;
	if (kit_bios_call(0x13, &check) || (check.eflags & KIT_EFLAGS_CF) || (check.ebx & 0xffff) != 0xaa55) {
		kit_result_printf("drive 0x%x: no int 13h extensions\n", drive);
		return 1;
	}
	memset(kit_bios_buffer, 0, sizeof(p));
	((struct edd_params *)kit_bios_buffer)->size = sizeof(p);
	if (kit_bios_call(0x13, &get) || (get.eflags & KIT_EFLAGS_CF)) {
		kit_result_printf("drive 0x%x: int 13h AH=48h failed (status 0x%x)\n", drive, (get.eax >> 8) & 0xff);
		return 1;
	}
	memcpy(&p, kit_bios_buffer, sizeof(p));
	if (kit_param("json"))
		kit_result_printf("{\"drive\": %u, \"version\": %u, \"sectors\": %llu, \"bytes_per_sector\": %u,"
				  " \"cylinders\": %u, \"heads\": %u, \"sectors_per_track\": %u}\n",
				  drive, (check.eax >> 8) & 0xff, (unsigned long long)p.sectors,
				  p.bytes_per_sector, p.cylinders, p.heads, p.sectors_per_track);
	else
		kit_result_printf("drive 0x%x: EDD 0x%x, %llu sectors of %u bytes, C/H/S %u/%u/%u\n",
				  drive, (check.eax >> 8) & 0xff, (unsigned long long)p.sectors,
				  p.bytes_per_sector, p.cylinders, p.heads, p.sectors_per_track);
	return 0;
}
