#!/bin/sh
# The seed scenario, run as root inside the guest: load the kit's phy_mode
# with KEXEC_PRESERVE_CONTEXT, jump to it three times, come back each time.
set -eu
case $(uname -m) in
    x86_64) payload=/usr/lib/kexec-py/x86_64/phy_mode ;;
    *) payload=/usr/lib/kexec-py/i386/phy_mode ;;
esac

kexec --load-preserve-context --args-none "$payload"
for jump in 1 2 3; do
    kexec -e
    echo "seed: back in Linux after jump $jump; kexec -e exited 0"
done
kexec -u
echo "seed: unloaded; kexec_loaded=$(cat /sys/kernel/kexec_loaded)"
