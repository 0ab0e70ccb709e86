#!/bin/sh
# test/run_qemu.sh FAKE_KERNEL PAYLOAD CMDLINE [TIMEOUT]: boot the fake kernel
# under QEMU (TCG) with the payload as multiboot module; serial output on
# stdout without CRs.  A halted payload runs until TIMEOUT (default 20 s).
# $QEMU: qemu-system-i386 (default) or qemu-system-x86_64 for ELF64 payloads.
# $QEMU_EXTRA: more devices (a VGA card, a disk) for payloads that call the BIOS.
set -u
kernel=$1 payload=$2 cmdline=$3 limit=${4:-20}
timeout "$limit" "${QEMU:-qemu-system-i386}" -machine pc -accel tcg -m 64 -nodefaults \
	-display none -no-reboot -serial stdio -monitor none ${QEMU_EXTRA:-} \
	-device isa-debug-exit,iobase=0xf4,iosize=1 \
	-kernel "$kernel" -append "$cmdline" -initrd "$payload" </dev/null 2>&1 | tr -d '\r'
exit 0
