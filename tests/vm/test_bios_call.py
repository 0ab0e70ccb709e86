"""Calling the BIOS from a running Linux and getting the answer back: `kexec --call` with the
examples the .deb ships (bios-e820, bios-memsize, cpuid) on our i386 and x86_64 kernels (the
kernel's own KEXEC_JUMP) and on Debian's stock amd64 and 686-pae kernels (through the kernel
driver shim). One guest per kernel serves every test here; vbe-info and edd get an x86_64 guest
with QEMU's std VGA and a virtio disk.

What must hold: the BIOS's E820 map is the one the kernel recorded from firmware, entry for
entry; twenty calls leave 64 MiB of Linux memory and every page Linux has below 640 KiB as they
were (the kit borrows three of them for its real-mode trip); a result buffer on the image's
pages is refused in one line; a payload that faults makes `kexec --call` exit 255 with one
line naming the fault; nothing stays loaded after a call; after twenty calls the network
(e1000 and virtio-net, one in a namespace) still carries pings."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import GuestFactory
from test_kexec_jump import JUMP_TIMEOUT
from test_payload_faults import build_kit_payload, install
from vmharness.guest import Guest, nic_mac

pytestmark = pytest.mark.vm

CSRC = Path(__file__).resolve().parents[2] / "csrc"
# guest kind -> (arch, kernel: None for ours, else the stock Debian package)
KINDS = {"i386": ("i386", None), "x86_64": ("x86_64", None), "amd64-shim": ("x86_64", "debian:linux-image-amd64"),
         "686-pae-shim": ("i386", "debian:linux-image-686-pae")}
# /sys/firmware/memmap/N/type -> the E820 type the kernel read it from (arch/x86/kernel/e820.c)
E820_TYPES = {"System RAM": 1, "Reserved": 2, "ACPI Tables": 3, "ACPI Non-volatile Storage": 4,
              "Unusable memory": 5, "Persistent Memory (legacy)": 7}
CALLS = 20
LOW_RAM = "0x1000-0x9f000"  # what the lowmem_hash test payload checks by default: RAM below 640 KiB, page 0 apart
TEST_PAYLOADS = {"lowmem_hash": ("lowmem_hash.c", ""), "fault_de": ("fault_payload.c", "-DFAULT_VECTOR=0")}


@pytest.fixture(scope="module")
def test_payloads(tmp_path_factory) -> dict[str, dict[str, Path]]:
    """arch -> name -> a test payload built with the kit (not shipped in the .deb)."""
    out = tmp_path_factory.mktemp("call-payloads")
    built: dict[str, dict[str, Path]] = {}
    for arch in ("i386", "x86_64"):
        for name, (source, cflags) in TEST_PAYLOADS.items():
            built.setdefault(arch, {})[name] = build_kit_payload(CSRC / "test" / source, out / arch / name,
                                                                 arch, cflags)
    return built


@pytest.fixture(params=list(KINDS))
def call_guest(request, shared_guests, test_payloads) -> tuple[Guest, str]:
    """(guest, arch): the session's shared guests. The test payloads are in /root the
    first time a guest is handed out."""
    arch, kernel = KINDS[request.param]
    g = shared_guests(arch, kernel)
    if g.run("test -f /root/lowmem_hash").rc:
        for name, path in test_payloads[arch].items():
            install(g, path, f"/root/{name}")
    g.check("kexec -u")
    return g, arch


def call(g: Guest, argv: str) -> tuple[int, str, str]:
    """kexec --call ARGV: (exit status, stdout, stderr) apart (the console also carries the
    payload's serial output); nothing is loaded afterwards, whatever happened."""
    rc = g.run(f"kexec --call {argv} >/tmp/call.out 2>/tmp/call.err", timeout=JUMP_TIMEOUT).rc
    out, err = g.check("cat /tmp/call.out"), g.check("cat /tmp/call.err")
    assert g.run("kexec -S").rc == 0, "--call left an image loaded"
    return rc, out, err


def ok(g: Guest, argv: str) -> str:
    rc, out, err = call(g, argv)
    assert (rc, err) == (0, ""), f"kexec --call {argv}: exit {rc}: {err}"
    return out


def firmware_map(g: Guest) -> list[dict[str, int]]:
    """/sys/firmware/memmap in its own order (the firmware's), as bios-e820 --json spells it."""
    lines = g.check("for d in $(ls /sys/firmware/memmap | sort -n); do"
                    " echo \"$(cat /sys/firmware/memmap/$d/start) $(cat /sys/firmware/memmap/$d/end)"
                    " $(cat /sys/firmware/memmap/$d/type)\"; done").splitlines()
    entries = []
    for line in lines:
        start, end, kind = line.split(" ", 2)
        entries.append({"addr": int(start, 16), "size": int(end, 16) - int(start, 16) + 1, "type": E820_TYPES[kind]})
    return entries


def test_bios_e820_is_the_firmware_map(call_guest) -> None:
    g, _ = call_guest
    answer = json.loads(ok(g, "bios-e820 --json"))
    assert answer == {"entries": firmware_map(g)}
    human = ok(g, "bios-e820").splitlines()
    assert len(human) == len(answer["entries"])
    first = answer["entries"][0]
    assert human[0] == f"0x{first['addr']:016x}-0x{first['addr'] + first['size'] - 1:016x} {first['type']} (usable)"


def test_bios_memsize_and_cpuid_agree_with_linux(call_guest) -> None:
    g, _ = call_guest
    memsize = json.loads(ok(g, "bios-memsize --json"))
    low = firmware_map(g)[0]
    assert (low["addr"], low["type"]) == (0, 1)
    assert memsize["conventional_kib"] * 1024 == low["size"]  # 639 KiB: the EBDA sits above
    above_1m = [e for e in firmware_map(g) if e["addr"] == 0x100000][0]
    e801 = memsize["e801"]
    assert e801["low_kib"] == 15 * 1024  # RAM runs past 16 MiB
    assert 0x1000000 + e801["high_64k"] * 0x10000 == min(above_1m["addr"] + above_1m["size"], 0xFFFFFFFF)
    cpuid = json.loads(ok(g, "cpuid --param json=1"))
    assert cpuid["vendor"] == re.search(r"^vendor_id\s*: (\S+)$", g.check("cat /proc/cpuinfo"), re.M)[1]
    assert ok(g, "cpuid").startswith(f"vendor: {cpuid['vendor']}\n")


def test_twenty_calls_leave_linux_memory_alone(call_guest) -> None:
    g, _ = call_guest
    g.check("dd if=/dev/urandom of=/tmp/big bs=1M count=64 2>/dev/null && sha256sum /tmp/big > /tmp/big.sum",
            timeout=120)
    before = ok(g, "/root/lowmem_hash")
    assert len(before.splitlines()) == 0x9E, before  # every page of 0x1000-0x9efff
    first = ok(g, "bios-e820")
    for _ in range(CALLS - 1):
        assert ok(g, "bios-e820") == first
    after = ok(g, "/root/lowmem_hash")
    changed = [a for a, b in zip(before.splitlines(), after.splitlines()) if a != b]
    assert changed == [], f"pages of {LOW_RAM} changed by {CALLS} BIOS calls: {changed}"
    g.check("sha256sum -c /tmp/big.sum", timeout=120)
    g.check("rm -f /tmp/big /tmp/big.sum")
    assert g.check("echo console-ok").strip() == "console-ok"
    assert not re.search(r"WARNING|BUG:|Oops", g.check("dmesg")), g.check("dmesg | tail -50")


REFUSE_OVER_SEGMENT = """
import struct, sys
from kexec_py.calling import ResultBuffer, call
from kexec_py.errors import KexecError
buf = ResultBuffer()
page = buf.pages()[0]
elf = bytearray(open(sys.argv[1], "rb").read())
# the payload's one PT_LOAD (and its entry) moved onto the result buffer's first page
if elf[4] == 2:
    phoff = struct.unpack_from("<Q", elf, 0x20)[0]
    struct.pack_into("<Q", elf, 0x18, page)
    struct.pack_into("<QQ", elf, phoff + 16, page, page)
else:
    phoff = struct.unpack_from("<I", elf, 0x1c)[0]
    struct.pack_into("<I", elf, 0x18, page)
    struct.pack_into("<II", elf, phoff + 8, page, page)
open("/tmp/over-buffer", "wb").write(elf)
try:
    call("/tmp/over-buffer", buffer=buf, no_ifdown=True)
except KexecError as e:
    print(f"refused: {e}")
"""


def test_result_buffer_over_a_segment_is_refused(call_guest) -> None:
    g, arch = call_guest
    g.check(f"cat > /tmp/over.py <<'EOF'\n{REFUSE_OVER_SEGMENT}\nEOF")
    out = g.check(f"python3 /tmp/over.py /usr/lib/kexec-py/{arch}/cpuid")
    assert re.fullmatch(r"refused: the result buffer's page (0x[0-9a-f]+)-0x[0-9a-f]+ lies in segment \1-0x[0-9a-f]+"
                        r" \(/tmp/over-buffer PT_LOAD\[0\] at \1\), which the kernel swaps out with the image\n",
                        out), out
    assert g.run("kexec -S").rc == 0


def test_a_faulting_payload_exits_255_with_one_line(call_guest) -> None:
    g, arch = call_guest
    rc, out, err = call(g, "/root/fault_de")
    assert (rc, out) == (255, "")
    ip = r"0x10[0-9a-f]{5}"
    assert re.fullmatch(rf"kexec: /root/fault_de: the payload took exception 0 \(#DE divide error\) at {ip};"
                        r" it was abandoned and Linux resumed\n", err), err
    assert g.check("echo linux-still-here").strip() == "linux-still-here"
    # the next call is a fresh load: the payload's first call again, which faults again
    assert call(g, "/root/fault_de")[0] == 255


@pytest.fixture(scope="module")
def devices_guest(tmp_path_factory) -> Guest:
    """An x86_64 guest on our kernel with QEMU's std VGA, a 64 MiB virtio-blk disk and two
    NICs on one hub (e1000 here, virtio-net in the namespace `peer`)."""
    factory = GuestFactory(tmp_path_factory)
    g = factory(arch="x86_64", vga=True, disk="64M", nics=("e1000", "virtio-net"))
    here, peer = (interface(g, nic_mac(i)) for i in (0, 1))
    g.check(f"ip netns add peer && ip link set {peer} netns peer"
            f" && ip addr add 10.9.0.1/24 dev {here} && ip link set {here} up"
            f" && ip netns exec peer ip addr add 10.9.0.2/24 dev {peer} && ip netns exec peer ip link set {peer} up")
    g.check(f"echo {here} > /tmp/here")
    yield g
    factory.stop_all()


def interface(g: Guest, mac: str) -> str:
    """The name of the interface with this MAC address (drivers probe in any order)."""
    return g.check(f"grep -l {mac} /sys/class/net/*/address").strip().split("/")[-2]


def pings(g: Guest) -> None:
    """10.9.0.1 reaches the namespace's 10.9.0.2 across the hub (a link may take seconds to
    come up); in a subshell: `exit` would end the guest's shell."""
    g.check("(for i in $(seq 30); do ping -c1 -W1 10.9.0.2 >/dev/null && exit 0; done; exit 1)", timeout=90)


def test_vbe_info_and_edd_describe_the_vga_card_and_the_disk(devices_guest: Guest) -> None:
    g = devices_guest
    vbe = json.loads(ok(g, "vbe-info --json"))
    assert vbe["version"] == "3.0" and vbe["memory_kib"] == 16384, vbe  # SeaVGABIOS, -device VGA's 16 MiB
    assert {"width": 1024, "height": 768, "bpp": 32} in [{k: m[k] for k in ("width", "height", "bpp")}
                                                         for m in vbe["modes"]], vbe
    assert ok(g, "vbe-info").startswith("VBE 3.0, ")
    edd = json.loads(ok(g, "edd --json"))
    assert edd["sectors"] == int(g.check("cat /sys/block/vda/size")) and edd["bytes_per_sector"] == 512, edd
    assert edd["drive"] == 0x80 and edd["version"] >= 0x21, edd
    rc, out, err = call(g, "edd --param drive=0x81")  # no second disk: the payload says so
    assert (rc, out) == (255, "") and err == "kexec: edd: the payload failed (1): drive 0x81: no int 13h extensions\n", err


def test_network_works_after_twenty_calls(devices_guest: Guest) -> None:
    """--call takes the e1000 down around each jump and brings it back with its address; the
    drivers (e1000, virtio-net) are frozen and thawed by every jump."""
    g = devices_guest
    pings(g)
    for _ in range(CALLS):
        ok(g, "bios-e820")
    assert "10.9.0.1/24" in g.check("ip -o addr show dev $(cat /tmp/here)")
    pings(g)
    assert not re.search(r"WARNING|BUG:|Oops", g.check("dmesg")), g.check("dmesg | tail -50")
