/*
 * lib/exceptions.c - what both architectures' trap handlers (<arch>/traps.c)
 * share: the names of the 32 exception vectors, the fault record and its
 * bookkeeping around the report (see kit/fault.h), and the report of a
 * return with nowhere to go.
 */
#include <kit/call.h>
#include <kit/console.h>
#include <kit/cpu.h>
#include <kit/fault.h>

#ifdef __x86_64__
#define IP_NAME	"RIP"
#else
#define IP_NAME	"EIP"
#endif

void kit_no_return(void) __attribute__((noreturn));
void kit_call_faulted(const struct kit_fault *f);

struct kit_fault kit_last_fault;
volatile uint32_t kit_calls;		/* incremented by _start on every entry */
/* Non-zero from the first exception of a call until the next entry (_start
 * clears it): a second exception then is a nested one. */
volatile uint32_t kit_fault_nesting;

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

/*
 * First step of every exception: record it in kit_last_fault, or, if this
 * call is already handling one (the report, payload_fault() or the way
 * home faulted), say so in one line and halt: unwinding again would most
 * likely fault again, forever.
 */
void kit_fault_record(const struct kit_fault *f)
{
	if (kit_fault_nesting++) {
		kit_console_newline();
		kit_printf("kit: exception %u at " IP_NAME "=" KIT_REG_FMT " (%s) while handling"
			   " exception %u; halted\n", (unsigned int)f->vector, f->ip,
			   kit_exception_name((unsigned int)f->vector),
			   (unsigned int)kit_last_fault.vector);
		kit_halt();
	}
	kit_last_fault.vector = f->vector;
	kit_last_fault.error = f->error;
	kit_last_fault.ip = f->ip;
	kit_last_fault.sp = f->sp;
	kit_last_fault.flags = f->flags;
	kit_last_fault.cr2 = f->cr2;
	kit_last_fault.call = kit_calls;
	kit_last_fault.count++;
	kit_console_newline();
}

/*
 * Last step, after the report: the payload's hook, then the closing line.
 * Returns when the trampoline may go home (traps.S then jumps to kit_leave).
 */
void kit_fault_finish(void)
{
	if (payload_fault)
		payload_fault(&kit_last_fault);
	if (!kit_entry.ret) {
		kit_console_newline();
		kit_puts("kit: no kernel to return to (not loaded with --load-preserve-context); halted\n");
		kit_halt();
	}
	kit_call_faulted(&kit_last_fault);
	kit_console_newline();
	kit_printf("kit: call %u abandoned after the fault; returning to the kernel\n",
		   (unsigned int)kit_last_fault.call);
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
