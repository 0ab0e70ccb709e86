/*
 * i386/traps.c - report an exception taken by the payload, then halt.
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

void kit_exception(const struct kit_trap_frame *f)
{
	static int depth;

	if (depth++)		/* faulted while reporting: just stop */
		kit_halt();
	kit_console_newline();
	kit_printf("kit: exception %u at EIP=0x%08x (%s) error=0x%08x\n",
		   f->vector, f->eip, kit_exception_name(f->vector), f->error);
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
