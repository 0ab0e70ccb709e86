/*
 * vbe-info - the VESA BIOS Extensions of the video BIOS: int 10h AX=4F00h
 * (controller information: version, OEM string, video memory, the mode
 * list) and AX=4F01h for every mode (resolution, bits per pixel).
 *
 * Result: "VBE 3.0, <oem>, N KiB" then "mode 0x118: 1024x768x32" lines;
 * with --param json=1: {"version": "3.0", "oem": "...", "memory_kib": N,
 * "modes": [{"mode": N, "width": N, "height": N, "bpp": N}, ...]}.
 */
#include <kit/kit.h>

#define MAX_MODES	256

struct vbe_info {		/* 4F00h, 512 bytes */
	char signature[4];
	uint16_t version;
	uint32_t oem;		/* real-mode far pointers: segment << 16 | offset */
	uint32_t capabilities;
	uint32_t modes;
	uint16_t memory_64k;
} __attribute__((packed));

struct vbe_mode {		/* 4F01h, the fields used here */
	uint16_t attributes;
	uint8_t pad[0x10];
	uint16_t width;
	uint16_t height;
	uint8_t pad2[3];
	uint8_t bpp;
} __attribute__((packed));

/*
 * A far pointer of the BIOS's: into the bounce buffer (VBE 2.0+ may put the
 * list there), which is now kit_bios_buffer, or anywhere else below 1 MiB,
 * which physical mode (and the x86_64 identity map) reaches directly.
 */
static const void *far(uint32_t p)
{
	uint32_t linear = (p >> 16) * 16 + (p & 0xffff);

	if (linear >= KIT_BIOS_BOUNCE && linear < KIT_BIOS_BOUNCE + KIT_BIOS_BOUNCE_SIZE)
		return kit_bios_buffer + (linear - KIT_BIOS_BOUNCE);
	return (const void *)(uintptr_t)linear;
}

static uint16_t modes[MAX_MODES];

int payload_main(const struct kit_entry_state *entry)
{
	struct kit_bios_regs r = { .eax = 0x4f00, .es = KIT_BIOS_BOUNCE_SEG, .edi = 0 };
	struct vbe_info info;
	const uint16_t *list;
	char oem[64];
	int json = kit_param("json") != 0, n = 0;

	(void)entry;
	memset(kit_bios_buffer, 0, 512);
	memcpy(kit_bios_buffer, "VBE2", 4);
	if (kit_bios_call(0x10, &r) || (r.eax & 0xffff) != 0x004f || memcmp(kit_bios_buffer, "VESA", 4)) {
		kit_result_printf("no VBE: int 10h AX=4F00h returned AX=0x%04x\n", r.eax & 0xffff);
		return 1;
	}
	memcpy(&info, kit_bios_buffer, sizeof(info));
	for (size_t i = 0; i < sizeof(oem) - 1; i++) {
		char c = ((const char *)far(info.oem))[i];

		oem[i] = (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? c : 0;
		if (!c) {
			oem[i] = 0;
			break;
		}
	}
	oem[sizeof(oem) - 1] = 0;
	/* the list, before 4F01h reuses the bounce buffer it may live in */
	for (list = far(info.modes); n < MAX_MODES && list[n] != 0xffff; n++)
		modes[n] = list[n];
	if (json)
		kit_result_printf("{\"version\": \"%u.%u\", \"oem\": \"%s\", \"memory_kib\": %u, \"modes\": [",
				  info.version >> 8, info.version & 0xff, oem, info.memory_64k * 64u);
	else
		kit_result_printf("VBE %u.%u, %s, %u KiB\n", info.version >> 8, info.version & 0xff, oem,
				  info.memory_64k * 64u);
	for (int i = 0, shown = 0; i < n; i++) {
		struct kit_bios_regs m = { .eax = 0x4f01, .ecx = modes[i], .es = KIT_BIOS_BOUNCE_SEG, .edi = 0 };
		struct vbe_mode mi;

		memset(kit_bios_buffer, 0, 256);
		if (kit_bios_call(0x10, &m) || (m.eax & 0xffff) != 0x004f)
			continue;
		memcpy(&mi, kit_bios_buffer, sizeof(mi));
		if (json)
			kit_result_printf("%s{\"mode\": %u, \"width\": %u, \"height\": %u, \"bpp\": %u}",
					  shown++ ? ", " : "", modes[i], mi.width, mi.height, mi.bpp);
		else
			kit_result_printf("mode 0x%03x: %ux%ux%u\n", modes[i], mi.width, mi.height, mi.bpp);
	}
	if (json)
		kit_result_printf("]}\n");
	return 0;
}
