/*
 * phy_mode - the smallest useful payload: one line per `kexec -e`.
 *
 * `calls` lives in the image's .bss; the kernel swaps the image back in on
 * every jump, so the count survives from one call to the next.
 */
#include <kit/kit.h>

static unsigned int calls;

int payload_main(const struct kit_entry_state *entry)
{
	(void)entry;
	kit_printf("phy_mode: hello from physical mode, call %u\n", ++calls);
	return 0;
}
