#!/bin/sh
# Guest side of ./bench: the payload and kexec-tools as installed in the guest.
exec python3 /root/guest_bench.py /usr/lib/kexec-py/i386/phy_mode /usr/sbin/kexec-tools "${BENCH_ROUNDS:-10}"
