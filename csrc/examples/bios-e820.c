/*
 * bios-e820 - the firmware's memory map, asked from the BIOS now: int 15h
 * AX=E820h, entry by entry, in the order the BIOS returns them.
 *
 * Result (kit/call.h): one line per entry, "0x<addr>-0x<last> <type>"; with
 * --param json=1 (kexec --call --json) one JSON object,
 * {"entries": [{"addr": N, "size": N, "type": N}, ...]}.
 */
#include <kit/kit.h>

#define SMAP		0x534d4150	/* "SMAP" */
#define MAX_ENTRIES	128

struct e820_entry {
	uint64_t addr, size;
	uint32_t type;
	uint32_t acpi;		/* ACPI 3.0 extended attributes: bit 0 = valid */
} __attribute__((packed));

static const char *type_name(uint32_t type)
{
	static const char *const names[] = { "?", "usable", "reserved", "ACPI data", "ACPI NVS",
					     "unusable", "?", "persistent" };

	return type < sizeof(names) / sizeof(names[0]) ? names[type] : "?";
}

/* Entry `*cont` (0: the first); *cont becomes the next one's, 0 after the last. */
static int next_entry(uint32_t *cont, struct e820_entry *e)
{
	struct kit_bios_regs r = {
		.eax = 0xe820, .ebx = *cont, .ecx = sizeof(*e), .edx = SMAP,
		.es = KIT_BIOS_BOUNCE_SEG, .edi = 0,
	};

	memset(kit_bios_buffer, 0, sizeof(*e));
	((struct e820_entry *)kit_bios_buffer)->acpi = 1;	/* as if the BIOS had no ACPI 3 field */
	if (kit_bios_call(0x15, &r) || (r.eflags & KIT_EFLAGS_CF) || r.eax != SMAP || r.ecx < 20)
		return -1;
	memcpy(e, kit_bios_buffer, sizeof(*e));
	*cont = r.ebx;
	return 0;
}

int payload_main(const struct kit_entry_state *entry)
{
	int json = kit_param("json") != 0;
	uint32_t cont = 0;
	int n = 0;

	(void)entry;
	if (json)
		kit_result_printf("{\"entries\": [");
	do {
		struct e820_entry e;

		if (next_entry(&cont, &e)) {
			if (n)
				break;	/* some BIOSes end with CF set instead of EBX = 0 */
			kit_result_printf("int 15h E820h is not supported");
			return 1;
		}
		if (json)
			kit_result_printf("%s{\"addr\": %llu, \"size\": %llu, \"type\": %u}", n ? ", " : "",
					  (unsigned long long)e.addr, (unsigned long long)e.size, e.type);
		else
			kit_result_printf("0x%016llx-0x%016llx %u (%s)\n", (unsigned long long)e.addr,
					  (unsigned long long)(e.addr + e.size - 1), e.type, type_name(e.type));
	} while (cont && ++n < MAX_ENTRIES);
	if (json)
		kit_result_printf("]}\n");
	return 0;
}
