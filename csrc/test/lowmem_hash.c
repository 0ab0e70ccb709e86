/*
 * test/lowmem_hash.c - a checksum of every page in [start, end) (parameters,
 * hex; default the RAM below 640 KiB past page 0), reported through the
 * result channel as "0x<page> 0x<fnv1a32>" lines: the VM tests compare what
 * Linux keeps below 1 MiB before and after BIOS calls, which the guest
 * cannot read itself (no /dev/mem, and STRICT_DEVMEM hides RAM pages).
 * Runs no BIOS code and writes nothing outside its image.
 */
#include <kit/kit.h>

static uint32_t hex_param(const char *name, uint32_t fallback)
{
	const char *s = kit_param(name);
	uint32_t v = 0;

	if (!s)
		return fallback;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		s += 2;
	for (; *s; s++)
		v = v * 16 + (uint32_t)(*s <= '9' ? *s - '0' : (*s | 0x20) - 'a' + 10);
	return v;
}

int payload_main(const struct kit_entry_state *entry)
{
	uint32_t start = hex_param("start", 0x1000), end = hex_param("end", 0x9f000);

	(void)entry;
	for (uint32_t page = start & ~0xfffu; page < end; page += 4096) {
		const volatile uint8_t *p = (const volatile uint8_t *)(uintptr_t)page;
		uint32_t h = 2166136261u;

		for (uint32_t i = 0; i < 4096; i++)
			h = (h ^ p[i]) * 16777619u;
		kit_result_printf("0x%05x 0x%08x\n", page, h);
	}
	return 0;
}
