# csrc/flags.mk - the compiler flags the payload kit (Makefile) and the
# purgatory (purgatory/Makefile) share: code that runs in physical mode
# between two kernels, for i386 or x86_64.
#
# Freestanding, absolute addresses, nothing the physical-mode world cannot
# honour: no PIC/GOT, no stack protector (it reads %gs/%fs, the kernel's), no
# unwind tables, no CET notes, no x87/SSE (those registers are live state of
# the task that ran `kexec -e`; x86_64 enters with CR4.OSFXSR clear, so SSE
# would even fault).  x86_64: no red zone (an NMI or fault frame lands below
# RSP).  The code model is each user's: the kit links below 2 GiB (small),
# purgatory is relocated anywhere (large).
FREESTANDING_CFLAGS := -mgeneral-regs-only -std=gnu11 -ffreestanding \
	-fno-pic -fno-pie -fno-stack-protector -fno-asynchronous-unwind-tables \
	-fno-unwind-tables -fcf-protection=none
ARCH_CFLAGS_i386 := -m32 -march=i686
ARCH_CFLAGS_x86_64 := -m64 -march=x86-64 -mno-red-zone
