/*
 * cpuid - the processor's identity from CPUID, no BIOS needed: vendor,
 * highest leaf, family/model/stepping (with the extended fields folded in
 * as the SDM says) and the brand string.
 *
 * Result: "vendor: ...", "max_leaf: N", "family: N model: N stepping: N",
 * "brand: ..."; with --param json=1 one object with those keys.
 */
#include <kit/kit.h>

static void cpuid(uint32_t leaf, uint32_t r[4])
{
	__asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(0));
}

/* The brand string without its padding spaces; the quote and backslash can't occur in it. */
static void brand(char out[49])
{
	uint32_t r[4];
	char *s = out, *end;

	cpuid(0x80000000, r);
	out[0] = 0;
	if (r[0] < 0x80000004)
		return;
	for (uint32_t leaf = 0x80000002; leaf <= 0x80000004; leaf++) {
		cpuid(leaf, r);
		memcpy(out + 16 * (leaf - 0x80000002), r, 16);
	}
	out[48] = 0;
	while (*s == ' ')
		s++;
	memmove(out, s, strlen(s) + 1);
	for (end = out + strlen(out); end > out && end[-1] == ' '; end--)
		end[-1] = 0;
}

int payload_main(const struct kit_entry_state *entry)
{
	uint32_t r[4], family, model;
	char vendor[13], name[49];

	(void)entry;
	cpuid(0, r);
	memcpy(vendor, &r[1], 4);
	memcpy(vendor + 4, &r[3], 4);
	memcpy(vendor + 8, &r[2], 4);
	vendor[12] = 0;
	uint32_t max_leaf = r[0];
	cpuid(1, r);
	family = (r[0] >> 8) & 0xf;
	model = (r[0] >> 4) & 0xf;
	if (family == 0xf)
		family += (r[0] >> 20) & 0xff;
	if (family == 0x6 || family >= 0xf)
		model |= ((r[0] >> 16) & 0xf) << 4;
	brand(name);
	if (kit_param("json"))
		kit_result_printf("{\"vendor\": \"%s\", \"max_leaf\": %u, \"family\": %u, \"model\": %u,"
				  " \"stepping\": %u, \"brand\": \"%s\"}\n", vendor, max_leaf, family,
				  model, r[0] & 0xf, name);
	else
		kit_result_printf("vendor: %s\nmax_leaf: %u\nfamily: %u model: %u stepping: %u\nbrand: %s\n",
				  vendor, max_leaf, family, model, r[0] & 0xf, name);
	return 0;
}
