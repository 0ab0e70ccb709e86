/*
 * entry_report - print the CPU state the kernel entered the payload with,
 * one "entry_report: name=0x%08x" line per item, between a begin line
 * (with the call count) and an end line.
 */
#include <kit/kit.h>

#define FIELD(name) { #name, offsetof(struct kit_entry_state, name) }

static const struct {
	const char *name;
	size_t offset;
} fields[] = {
	FIELD(eax), FIELD(ebx), FIELD(ecx), FIELD(edx), FIELD(esi), FIELD(edi),
	FIELD(ebp), FIELD(esp), FIELD(eflags), FIELD(cr0), FIELD(cr3), FIELD(cr4),
	FIELD(cs), FIELD(ds), FIELD(es), FIELD(fs), FIELD(gs), FIELD(ss),
	FIELD(gdtr_base), FIELD(gdtr_limit), FIELD(idtr_base), FIELD(idtr_limit),
	FIELD(ret),
};

static unsigned int calls;

int payload_main(const struct kit_entry_state *entry)
{
	kit_printf("entry_report: begin call %u\n", ++calls);
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		kit_printf("entry_report: %s=0x%08x\n", fields[i].name,
			   *(const uint32_t *)((const char *)entry + fields[i].offset));
	kit_printf("entry_report: stack_page=0x%08x\n", entry->esp & ~0xfffu);
	kit_puts("entry_report: end\n");
	return 0;
}
