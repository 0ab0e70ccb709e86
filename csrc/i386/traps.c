/*
 * i386/traps.c - report an exception taken by the payload, or a return
 * with nowhere to go, then halt.
 *
 * Returning to the kernel after a fault is not an option: the payload's
 * state is unknown and the kernel would resume on top of it.  Halting keeps
 * the report on the console; the machine needs a reset either way.
 */
#include <stdint.h>
#include <kit/console.h>
#include <kit/cpu.h>

struct kit_trap_frame {
	uint32_t edi, esi, ebp, esp_pushal, ebx, edx, ecx, eax;	/* pushal */
	uint32_t vector, error;
	uint32_t eip, cs, eflags;	/* pushed by the CPU (same ring: no SS:ESP) */
};

void kit_exception(const struct kit_trap_frame *f) __attribute__((noreturn));
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

void kit_exception(const struct kit_trap_frame *f)
{
	static int depth;

	if (depth++)		/* faulted while reporting: just stop */
		kit_halt();
	kit_console_newline();
	kit_printf("kit: exception %u at EIP=0x%08x (%s) error=0x%08x\n",
		   f->vector, f->eip, f->vector < 32 ? names[f->vector] : "?", f->error);
	kit_printf("kit: eax=0x%08x ebx=0x%08x ecx=0x%08x edx=0x%08x\n",
		   f->eax, f->ebx, f->ecx, f->edx);
	kit_printf("kit: esi=0x%08x edi=0x%08x ebp=0x%08x esp=0x%08x\n",
		   f->esi, f->edi, f->ebp, (uint32_t)(uintptr_t)(&f->eflags + 1));
	kit_printf("kit: cs=0x%04x eflags=0x%08x cr0=0x%08x cr2=0x%08x cr3=0x%08x cr4=0x%08x\n",
		   f->cs & 0xffff, f->eflags, kit_read_cr0(), kit_read_cr2(),
		   kit_read_cr3(), kit_read_cr4());
	kit_puts("kit: halted\n");
	kit_halt();
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
