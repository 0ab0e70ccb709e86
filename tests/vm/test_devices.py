"""Machines with a disk and network cards (2 CPUs, a virtio-blk disk, a virtio-net and an
e1000 card), on the kernels the harness builds (the kernel's own KEXEC_JUMP) and on Debian's
stock kernels (the kexec_jump module): an ext4 filesystem keeps every record a writer saw
fsync'd while phy_mode is jumped to 100 times under it, both cards pass traffic to each
other, across a network namespace, after every one of 20 jumps, and both CPUs come back
after each jump (4 CPUs: tests/vm/test_real_machines.py).

One guest per machine serves both tests (boots are the expensive part under TCG).
"""

from __future__ import annotations

import re
import shlex
import time
from pathlib import Path
from typing import NamedTuple

import pytest

from guest_paths import payload
from test_kexec_jump import JUMP_TIMEOUT
from test_network import STATE
from test_real_machines import cpus_come_back_across_jumps
from vmharness.guest import Guest, nic_mac
from vmharness.overlay import RunSpec

pytestmark = [pytest.mark.vm, pytest.mark.slow]


class Machine(NamedTuple):
    arch: str
    kernel: str | None  # None: the harness's patched kernel


MACHINES = [
    pytest.param(Machine("i386", None), id="patched-i386"),
    pytest.param(Machine("x86_64", None), id="patched-x86_64"),
    pytest.param(Machine("x86_64", "debian:linux-image-amd64"), id="stock-amd64"),
    pytest.param(Machine("i386", "debian:linux-image-686-pae"), id="stock-686-pae"),
]
SMP = 2
DISK = "64M"
NICS = ("virtio-net", "e1000")   # guest.nic_mac(0), nic_mac(1), on one QEMU hub
WRITER = Path(__file__).with_name("disk_writer.py")
JUMPER = Path(__file__).with_name("guest_jumps.py")
BAD_KERNEL_MESSAGES = re.compile(r"WARNING|BUG:|Oops|Call Trace|I/O error|EXT4-fs error|"
                                 r"EXT4-fs warning|blk_update_request|Buffer I/O")


@pytest.fixture(scope="module", params=MACHINES)
def machine(request: pytest.FixtureRequest) -> Machine:
    return request.param


@pytest.fixture(scope="module")
def device_guest(machine: Machine, _session_factory) -> Guest:
    """The machine's guest: 2 CPUs, ext4 on /mnt/disk (guest/init), the two cards, the
    writer, the jump loop."""
    g = _session_factory(arch=machine.arch, kernel=machine.kernel, smp=SMP, disk=DISK, nics=NICS,
                         run=RunSpec(adds=(WRITER, JUMPER)))
    g.check(f"kexec --load-preserve-context --args-none {payload(machine.arch, 'phy_mode')}")
    yield g
    g.stop()


def kernel_log_is_clean(g: Guest) -> None:
    log = g.check("dmesg")
    assert not BAD_KERNEL_MESSAGES.search(log), log[-4000:]


def calls(output: str) -> list[int]:
    return [int(n) for n in re.findall(r"hello from physical mode, call (\d+)", output)]


def jumps(g: Guest, count: int, after_each: str, timeout: float) -> str:
    """`kexec -e` count times, running the shell command after_each after each jump: the
    first as users type it, the others from one process (guest_jumps.py: the same code
    without a Python start-up and imports each time); the output."""
    rc, output = g.run(f"kexec -e && {after_each}", timeout=JUMP_TIMEOUT + 60)
    assert rc == 0 and len(calls(output)) == 1, output
    rc, more = g.run(f"python3 /root/guest_jumps.py {count - 1} {shlex.quote(after_each)}",
                     timeout=timeout)
    assert rc == 0, more[-3000:]
    first = calls(output)[0]
    assert calls(more) == list(range(first + 1, first + count)), "a jump did not come back"
    return output + more


# --- data ----------------------------------------------------------------------------------

DATA_JUMPS = 100
DATA_TIMEOUT = 600   # about 0.5 s a jump under TCG with the writer running beside it
RECORDS = "/mnt/disk/records"
ACKED = "/tmp/acked"   # tmpfs, not the disk under test


def acked(g: Guest) -> int:
    return int(g.check(f"cat {ACKED}"))


def test_ext4_on_virtio_blk_keeps_every_fsynced_record_across_100_jumps(device_guest: Guest) -> None:
    g = device_guest
    assert g.check("findmnt -n -o FSTYPE /mnt/disk").strip() == "ext4"
    g.check(f"python3 /root/disk_writer.py write {RECORDS} {ACKED} >/tmp/writer.log 2>&1 & "
            "echo $! > /tmp/writer.pid")
    g.check(f"while [ ! -s {ACKED} ] || [ $(cat {ACKED}) -lt 10 ]; do sleep 0.2; done", timeout=60)

    # every jump freezes the writer (wherever it is: in write(), fsync() or its pause) and
    # thaws it afterwards; its count after each jump
    started = time.monotonic()
    output = jumps(g, DATA_JUMPS, f"echo acked: $(cat {ACKED})", DATA_TIMEOUT)
    print(f"{DATA_JUMPS} jumps in {time.monotonic() - started:.0f} s")
    progress = [int(n) for n in re.findall(r"^acked: (\d+)$", output, re.M)]
    assert len(progress) == DATA_JUMPS
    assert g.run("kill -0 $(cat /tmp/writer.pid)").rc == 0, g.check("cat /tmp/writer.log")
    # thawed each time: it kept writing between the jumps, not only once they were over
    # (about 10 records between two jumps; a loaded host may starve it now and then)
    advanced = sum(b > a for a, b in zip(progress, progress[1:]))
    assert advanced >= len(progress) * 3 // 4, f"the writer stalled between jumps: {progress}"

    # the writer is the shell's child: wait gives its status
    rc, log = g.run("kill -TERM $(cat /tmp/writer.pid); wait $(cat /tmp/writer.pid); "
                    "s=$?; cat /tmp/writer.log; [ $s = 0 ]")
    assert rc == 0 and log == "", f"the writer failed: {log}"
    last = acked(g)

    g.check("umount /mnt/disk", timeout=120)
    rc, fsck = g.run("e2fsck -fn /dev/vda", timeout=300)
    assert rc == 0, fsck
    g.check("mount -o ro /dev/vda /mnt/disk")
    rc, out = g.run(f"python3 /root/disk_writer.py verify {RECORDS}", timeout=300)
    assert rc == 0, out
    on_disk = int(out.split()[-1])
    # SIGTERM lets the record in hand finish: nothing past the last acknowledged one
    assert on_disk == last, f"{last} records acknowledged, {on_disk} on disk"
    print(f"{on_disk} records ({g.check(f'du -k {RECORDS}').split()[0]} KiB), all verified; "
          f"the writer wrote between {advanced} of {len(progress) - 1} pairs of jumps")
    g.check("umount /mnt/disk")
    kernel_log_is_clean(g)


# --- network -------------------------------------------------------------------------------

NET_JUMPS = 20
NET_TIMEOUT = 900   # about 4 s a jump under TCG: the e1000's link takes 2 s to come back
NETNS = "peer"
ROOT_ADDR, PEER_ADDR = "10.11.0.1", "10.11.0.2"
LINK_POLLS = 300   # of 0.1 s or more: how long the network may take to come back
# In the guest: `netcheck ROOT_IF PEER_IF save|wait` waits until both links are up, carrier
# (`carrier`, LOWER_UP: read from the driver) and the operational state the kernel derives
# from it a little later (`operstate`, no NO-CARRIER: before that the queue drops packets;
# the other namespace's sysfs is not ours, `ip -n` reads it), and, `wait`, until both
# namespaces' up links, addresses and routes are what `save` recorded (that first: it takes
# about as long as the e1000's link). Prints the seconds it took.
NETCHECK = f"""#!/bin/sh
state() {{
{STATE}
echo "--- {NETNS}"
ip -n {NETNS} -o addr show | grep -v ' fe80::' | sed 's/\\\\.*//' | sort
ip -n {NETNS} route show | sed 's/ linkdown//'
}}
up() {{
    read carrier < /sys/class/net/$1/carrier && read operstate < /sys/class/net/$1/operstate &&
    [ "$carrier" = 1 ] && [ "$operstate" = up ] || return 1
    case $(ip -n {NETNS} -o link show "$2") in *NO-CARRIER*) return 1;; *LOWER_UP*) return 0;; esac
    return 1
}}
same() {{ [ "$1" = save ] || {{ state > /tmp/net.now && cmp -s /tmp/net.now /tmp/net.saved; }}; }}
poll() {{
    n=0
    until "$@"; do
        n=$((n+1)); [ $n -lt {LINK_POLLS} ] || return 1
        sleep 0.1
    done
}}
start=$(cut -d' ' -f1 /proc/uptime)
if ! poll same "$3" || ! poll up "$1" "$2"; then
    echo "netcheck: not back:"; ip -o link show; ip -n {NETNS} -o link show
    state > /tmp/net.now; diff /tmp/net.saved /tmp/net.now; exit 1
fi
[ "$3" != save ] || state > /tmp/net.saved
echo "netcheck: back after $(awk -v s=$start '{{print $1 - s}}' /proc/uptime) s"
"""
# the replies come back the other way: both cards send and receive. -w, not -W: once a
# reply is in, -W waits only two round trips for the others, and TCG's round trips vary.
# With -w, ping goes on sending every 0.05 s until PINGS replies are in, so under TCG's
# 200 ms round trips it may send more than PINGS: the proof of no loss is that each of the
# first PINGS requests was answered, not the totals
PINGS = 3
PING = f"ping -n -c {PINGS} -i 0.05 -w 20 {PEER_ADDR}"


def pings_lost(output: str) -> list[list[int]]:
    """For each run of PING in output, the sequence numbers among its first PINGS
    requests that no reply answered."""
    runs = output.split(f"PING {PEER_ADDR} ")[1:]
    return [sorted(set(range(1, PINGS + 1)) - {int(n) for n in re.findall(r" icmp_seq=(\d+) ", run)})
            for run in runs]


def ping_run(*seqs: int) -> str:
    return (f"PING {PEER_ADDR} ({PEER_ADDR}) 56(84) bytes of data.\n"
            + "".join(f"64 bytes from {PEER_ADDR}: icmp_seq={n} ttl=64 time=31.2 ms\n" for n in seqs))


@pytest.mark.parametrize("seqs, lost", [
    ([1, 2, 3], []),
    ([1, 2, 3, 4], []),      # a fourth sent before the third reply was in (CI, stop 16)
    ([2, 1, 3], []),
    ([1, 3, 4], [2]),        # -w sent a fourth for the one lost: still a loss
    ([1, 2, 13], [3]),
    ([], [1, 2, 3]),
])
def test_pings_lost(seqs: list[int], lost: list[int]) -> None:
    assert pings_lost(ping_run(*seqs)) == [lost]
    assert pings_lost(ping_run(1, 2, 3) + ping_run(*seqs)) == [[], lost]


def ifname(g: Guest, mac: str) -> str:
    names = re.findall(r"^\d+: ([^:@]+)[:@].*link/ether " + mac, g.check("ip -o link show"), re.M)
    assert len(names) == 1, f"no one interface with MAC {mac}: {names}"
    return names[0]


def test_virtio_net_and_e1000_pass_traffic_after_each_of_20_jumps(device_guest: Guest) -> None:
    g = device_guest
    virtio, e1000 = ifname(g, nic_mac(0)), ifname(g, nic_mac(1))
    assert g.check(f"basename $(readlink /sys/class/net/{virtio}/device/driver)").strip() == "virtio_net"
    assert g.check(f"basename $(readlink /sys/class/net/{e1000}/device/driver)").strip() == "e1000"
    # the e1000 goes into a namespace of its own: the two cards can only talk over the wire
    g.check(f"""( set -e
cat > /tmp/netcheck <<'EOF'
{NETCHECK}EOF
chmod +x /tmp/netcheck
ip netns add {NETNS}
ip link set {e1000} netns {NETNS}
ip -n {NETNS} link set lo up
ip -n {NETNS} addr add {PEER_ADDR}/24 dev {e1000}
ip -n {NETNS} link set {e1000} up
ip -n {NETNS} route add 203.0.113.0/24 via {ROOT_ADDR}
ip addr add {ROOT_ADDR}/24 dev {virtio}
ip addr add 10.11.1.1/24 dev {virtio} label {virtio}:sec
ip link set {virtio} up
ip route add 198.18.0.0/15 via {PEER_ADDR} dev {virtio} metric 50 )""")
    g.check(f"/tmp/netcheck {virtio} {e1000} save", timeout=120)
    assert pings_lost(g.check(PING, timeout=60)) == [[]]
    saved = g.check("cat /tmp/net.saved")
    assert f"up {virtio}\n" in saved and "198.18.0.0/15 via" in saved and "203.0.113.0/24 via" in saved

    # kexec takes the root namespace's card down and brings it back as it was; the other
    # namespace's card stays up (kexec leaves other namespaces alone) through the devices'
    # freeze and thaw, losing its carrier for a while
    started = time.monotonic()
    output = jumps(g, NET_JUMPS, f"/tmp/netcheck {virtio} {e1000} wait && {PING}", NET_TIMEOUT)
    elapsed = time.monotonic() - started
    assert pings_lost(output) == [[]] * NET_JUMPS, output[-3000:]
    waits = [float(w) for w in re.findall(r"netcheck: back after ([\d.]+) s", output)]
    assert len(waits) == NET_JUMPS
    print(f"{NET_JUMPS} jumps in {elapsed:.0f} s; links, addresses and routes back "
          f"{min(waits):.1f}-{max(waits):.1f} s after each")
    kernel_log_is_clean(g)


# --- CPUs ----------------------------------------------------------------------------------

def test_both_cpus_come_back_and_a_pinned_process_keeps_its_cpu(device_guest: Guest,
                                                                machine: Machine) -> None:
    cpus_come_back_across_jumps(device_guest, machine.arch, SMP)
