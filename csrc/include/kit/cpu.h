/* kit/cpu.h - control registers and halting. */
#ifndef KIT_CPU_H
#define KIT_CPU_H

#include <stdint.h>

#define KIT_READ_CR(n)							\
	static inline uint32_t kit_read_cr##n(void)			\
	{								\
		uint32_t v;						\
		__asm__ volatile("movl %%cr" #n ", %0" : "=r"(v));	\
		return v;						\
	}
KIT_READ_CR(0)
KIT_READ_CR(2)
KIT_READ_CR(3)
KIT_READ_CR(4)
#undef KIT_READ_CR

static inline uint32_t kit_read_eflags(void)
{
	uint32_t v;
	__asm__ volatile("pushfl; popl %0" : "=r"(v));
	return v;
}

/* Stop this CPU for good: interrupts stay off, an NMI only leaves hlt. */
static inline __attribute__((noreturn)) void kit_halt(void)
{
	for (;;)
		__asm__ volatile("cli; hlt");
}

#endif /* KIT_CPU_H */
