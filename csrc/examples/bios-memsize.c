/*
 * bios-memsize - how much memory the BIOS says there is, the old ways:
 * int 12h (conventional memory below 640 KiB, in KiB) and int 15h AX=E801h
 * (KiB between 1 MiB and 16 MiB, 64 KiB blocks above 16 MiB).
 *
 * Result: "conventional: N KiB" and "e801: N KiB 1M-16M, N x 64 KiB above
 * 16M" (or "e801: not supported"); with --param json=1:
 * {"conventional_kib": N, "e801": {"low_kib": N, "high_64k": N}} (e801 null
 * when the BIOS does not have it).
 */
#include <kit/kit.h>

int payload_main(const struct kit_entry_state *entry)
{
	int json = kit_param("json") != 0;
	struct kit_bios_regs r12 = { 0 };
	struct kit_bios_regs r = { .eax = 0xe801 };
	uint32_t low, high;
	int e801;

	(void)entry;
	if (kit_bios_call(0x12, &r12) || kit_bios_call(0x15, &r)) {
		kit_result_printf("cannot leave for real mode");
		return 1;
	}
	e801 = !(r.eflags & KIT_EFLAGS_CF);
	/* E801h answers in AX/BX or, on some BIOSes, only in CX/DX */
	low = (r.eax & 0xffff) ? r.eax & 0xffff : r.ecx & 0xffff;
	high = (r.eax & 0xffff) ? r.ebx & 0xffff : r.edx & 0xffff;
	if (json) {
		kit_result_printf("{\"conventional_kib\": %u, \"e801\": ", r12.eax & 0xffff);
		if (e801)
			kit_result_printf("{\"low_kib\": %u, \"high_64k\": %u}}\n", low, high);
		else
			kit_result_printf("null}\n");
		return 0;
	}
	kit_result_printf("conventional: %u KiB\n", r12.eax & 0xffff);
	if (e801)
		kit_result_printf("e801: %u KiB 1M-16M, %u x 64 KiB above 16M\n", low, high);
	else
		kit_result_printf("e801: not supported\n");
	return 0;
}
