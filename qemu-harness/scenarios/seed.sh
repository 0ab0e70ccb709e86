#!/bin/sh
# The seed scenario, run as root inside the guest: load the kit's phy_mode
# with KEXEC_PRESERVE_CONTEXT, jump to it three times, come back each time.
# On a kernel without CONFIG_KEXEC_JUMP (Debian's) kexec loads the kexec_jump
# module and jumps through it.
set -eu

# the seed's command line, verbatim: phy_mode is the example the .deb installs
kexec --load-preserve-context --args-none phy_mode
for jump in 1 2 3; do
    kexec -e
    echo "seed: back in Linux after jump $jump; kexec -e exited 0"
done
kexec -u
# -S -l: 0 when nothing is loaded, in the kernel or in the kexec_jump module
kexec -S -l && echo "seed: unloaded; kexec -S -l exited 0"
