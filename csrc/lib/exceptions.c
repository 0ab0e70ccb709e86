/*
 * lib/exceptions.c - names of the 32 architectural exception vectors, for
 * the trap reports of both architectures (<arch>/traps.c), and the report
 * of a return with nowhere to go.
 */
#include <kit/console.h>
#include <kit/cpu.h>

void kit_no_return(void) __attribute__((noreturn));

static const char *const names[32] = {
	"#DE divide error", "#DB debug", "NMI", "#BP breakpoint", "#OF overflow",
	"#BR bound range", "#UD invalid opcode", "#NM device not available",
	"#DF double fault", "coprocessor segment overrun", "#TS invalid TSS",
	"#NP segment not present", "#SS stack fault", "#GP general protection",
	"#PF page fault", "reserved", "#MF x87 error", "#AC alignment check",
	"#MC machine check", "#XM SIMD error", "#VE virtualization",
	"#CP control protection", "reserved", "reserved", "reserved", "reserved",
	"reserved", "reserved", "#HV hypervisor injection", "#VC VMM communication",
	"#SX security", "reserved",
};

const char *kit_exception_name(unsigned int vector)
{
	return vector < 32 ? names[vector] : "?";
}

/* payload_main returned, but the kernel entered without preserve-context
 * (relocate_kernel then leaves 0 as return address): nowhere to return to. */
void kit_no_return(void)
{
	kit_console_newline();
	kit_puts("kit: payload returned but there is no kernel to return to"
		 " (not loaded with --load-preserve-context); halted\n");
	kit_halt();
}
