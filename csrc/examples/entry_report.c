/*
 * entry_report - print the CPU state the kernel entered the payload with,
 * one "entry_report: name=0x..." line per item (8 hex digits on i386, 16 on
 * x86_64), between a begin line (with the call count) and an end line.
 */
#include <kit/kit.h>

#define FIELD(name) { #name, offsetof(struct kit_entry_state, name) }

static const struct {
	const char *name;
	size_t offset;
} fields[] = {
#ifdef __x86_64__
	FIELD(rax), FIELD(rbx), FIELD(rcx), FIELD(rdx), FIELD(rsi), FIELD(rdi),
	FIELD(rbp), FIELD(rsp), FIELD(r8), FIELD(r9), FIELD(r10), FIELD(r11),
	FIELD(r12), FIELD(r13), FIELD(r14), FIELD(r15), FIELD(rflags),
#else
	FIELD(eax), FIELD(ebx), FIELD(ecx), FIELD(edx), FIELD(esi), FIELD(edi),
	FIELD(ebp), FIELD(esp), FIELD(eflags),
#endif
	FIELD(cr0), FIELD(cr3), FIELD(cr4),
	FIELD(cs), FIELD(ds), FIELD(es), FIELD(fs), FIELD(gs), FIELD(ss),
	FIELD(gdtr_base), FIELD(gdtr_limit), FIELD(idtr_base), FIELD(idtr_limit),
	FIELD(ret),
};

static unsigned int calls;

int payload_main(const struct kit_entry_state *entry)
{
	kit_printf("entry_report: begin call %u\n", ++calls);
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		kit_printf("entry_report: %s=" KIT_REG_FMT "\n", fields[i].name,
			   *(const kit_reg_t *)((const char *)entry + fields[i].offset));
#ifdef __x86_64__
	kit_printf("entry_report: stack_page=" KIT_REG_FMT "\n", entry->rsp & ~(kit_reg_t)0xfff);
#else
	kit_printf("entry_report: stack_page=" KIT_REG_FMT "\n", entry->esp & ~0xfffu);
#endif
	kit_puts("entry_report: end\n");
	return 0;
}
