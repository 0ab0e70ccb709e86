/* kit/cpu.h - control registers and halting. */
#ifndef KIT_CPU_H
#define KIT_CPU_H

#include <stdint.h>
#include <kit/entry.h>

/* kit_reg_t: the width of the CPU's registers (32 or 64 bits) */
#define KIT_READ_CR(n)							\
	static inline kit_reg_t kit_read_cr##n(void)			\
	{								\
		kit_reg_t v;						\
		__asm__ volatile("mov %%cr" #n ", %0" : "=r"(v));	\
		return v;						\
	}
KIT_READ_CR(0)
KIT_READ_CR(2)
KIT_READ_CR(3)
KIT_READ_CR(4)
#undef KIT_READ_CR

static inline kit_reg_t kit_read_eflags(void)
{
	kit_reg_t v;
	__asm__ volatile("pushf; pop %0" : "=r"(v));
	return v;
}

/* "#GP general protection" and so on; "?" beyond vector 31. */
const char *kit_exception_name(unsigned int vector);

/* Stop this CPU for good: interrupts stay off, an NMI only leaves hlt. */
static inline __attribute__((noreturn)) void kit_halt(void)
{
	for (;;)
		__asm__ volatile("cli; hlt");
}

#endif /* KIT_CPU_H */
