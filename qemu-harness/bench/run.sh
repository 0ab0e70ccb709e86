#!/bin/sh
# Guest side of ./bench: the payload and kexec-tools as installed in the guest,
# the guest's own kernel added by ./bench.
exec python3 /root/guest_bench.py /usr/lib/kexec-py/i386/phy_mode /usr/sbin/kexec-tools /root/bzImage "${BENCH_ROUNDS:-10}"
