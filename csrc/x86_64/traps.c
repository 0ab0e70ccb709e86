/*
 * x86_64/traps.c - report an exception taken by the payload (kit/fault.h);
 * traps.S then unwinds to the kernel's saved state (kit_leave in entry.S).
 */
#include <stdint.h>
#include <kit/console.h>
#include <kit/cpu.h>
#include <kit/desc.h>
#include <kit/fault.h>

struct kit_trap_frame {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8;	/* pushed by traps.S */
	uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t vector, error;
	uint64_t rip, cs, rflags, rsp, ss;	/* pushed by the CPU (64-bit: always SS:RSP) */
};

void kit_exception(const struct kit_trap_frame *f);
void kit_fault_record(const struct kit_fault *f);
void kit_fault_finish(void);

void kit_exception(const struct kit_trap_frame *f)
{
	const struct kit_fault fault = {
		.vector = f->vector, .error = f->error, .ip = f->rip, .sp = f->rsp,
		.flags = f->rflags, .cr2 = kit_read_cr2(),
	};

	kit_fault_record(&fault);	/* halts if this is a nested fault */
	kit_printf("kit: exception %lu at RIP=0x%016lx (%s)", f->vector, f->rip,
		   kit_exception_name((unsigned int)f->vector));
	if (KIT_EXC_HAS_ERRCODE(f->vector))
		kit_printf(" error=0x%08lx", f->error);
	if (f->vector == 14)
		kit_printf(" cr2=0x%016lx", fault.cr2);
	kit_putc('\n');
	kit_printf("kit: rax=0x%016lx rbx=0x%016lx rcx=0x%016lx rdx=0x%016lx\n",
		   f->rax, f->rbx, f->rcx, f->rdx);
	kit_printf("kit: rsi=0x%016lx rdi=0x%016lx rbp=0x%016lx rsp=0x%016lx\n",
		   f->rsi, f->rdi, f->rbp, f->rsp);
	kit_printf("kit: r8=0x%016lx r9=0x%016lx r10=0x%016lx r11=0x%016lx\n",
		   f->r8, f->r9, f->r10, f->r11);
	kit_printf("kit: r12=0x%016lx r13=0x%016lx r14=0x%016lx r15=0x%016lx\n",
		   f->r12, f->r13, f->r14, f->r15);
	kit_printf("kit: cs=0x%04lx ss=0x%04lx rflags=0x%08lx cr0=0x%08lx cr2=0x%016lx"
		   " cr3=0x%016lx cr4=0x%08lx\n",
		   f->cs & 0xffff, f->ss & 0xffff, f->rflags, kit_read_cr0(), fault.cr2,
		   kit_read_cr3(), kit_read_cr4());
	kit_fault_finish();		/* halts if there is no kernel to return to */
}
