/*
 * i386/traps.c - report an exception taken by the payload (kit/fault.h);
 * traps.S then unwinds to the kernel's saved state (kit_leave in entry.S).
 */
#include <stdint.h>
#include <kit/console.h>
#include <kit/cpu.h>
#include <kit/desc.h>
#include <kit/fault.h>

struct kit_trap_frame {
	uint32_t edi, esi, ebp, esp_pushal, ebx, edx, ecx, eax;	/* pushal */
	uint32_t vector, error;
	uint32_t eip, cs, eflags;	/* pushed by the CPU (same ring: no SS:ESP) */
};

void kit_exception(const struct kit_trap_frame *f);
void kit_fault_record(const struct kit_fault *f);
void kit_fault_finish(void);

void kit_exception(const struct kit_trap_frame *f)
{
	/* ring 0 to ring 0: the CPU pushed no SS:ESP, the frame ends where ESP was */
	const struct kit_fault fault = {
		.vector = f->vector, .error = f->error, .ip = f->eip,
		.sp = (uint32_t)(uintptr_t)(&f->eflags + 1), .flags = f->eflags,
		.cr2 = kit_read_cr2(),
	};

	kit_fault_record(&fault);	/* halts if this is a nested fault */
	kit_printf("kit: exception %u at EIP=0x%08x (%s)", f->vector, f->eip,
		   kit_exception_name(f->vector));
	if (KIT_EXC_HAS_ERRCODE(f->vector))
		kit_printf(" error=0x%08x", f->error);
	if (f->vector == 14)
		kit_printf(" cr2=0x%08x", fault.cr2);
	kit_putc('\n');
	kit_printf("kit: eax=0x%08x ebx=0x%08x ecx=0x%08x edx=0x%08x\n",
		   f->eax, f->ebx, f->ecx, f->edx);
	kit_printf("kit: esi=0x%08x edi=0x%08x ebp=0x%08x esp=0x%08x\n",
		   f->esi, f->edi, f->ebp, fault.sp);
	kit_printf("kit: cs=0x%04x eflags=0x%08x cr0=0x%08x cr2=0x%08x cr3=0x%08x cr4=0x%08x\n",
		   f->cs & 0xffff, f->eflags, kit_read_cr0(), fault.cr2,
		   kit_read_cr3(), kit_read_cr4());
	kit_fault_finish();		/* halts if there is no kernel to return to */
}
