"""A payload that takes a CPU exception does not take the machine down: the kit reports the
fault on the console, unwinds to the kernel state it saved on entry and returns to Linux
through the re-entry protocol, so `kexec -e` returns 0, Linux keeps running with its memory
intact, and the next `kexec -e` calls the payload again. On our kernels (the `arch_guest`s:
i386 6.1 with our patch, x86_64 6.12.117) and on Debian's stock amd64 and 686-pae kernels
through the kernel driver shim; one guest per kernel serves every fault kind.

The payload is csrc/test/fault_payload.c, built here with the kit (`make PAYLOAD=... OUT=...
EXTRA_CFLAGS=-DFAULT_VECTOR=N`), not one the .deb ships: it faults on its odd calls and
returns normally on its even ones."""

from __future__ import annotations

import base64
import gzip
import hashlib
import re
import subprocess
from pathlib import Path

import pytest

from test_kexec_jump import JUMP_TIMEOUT
from vmharness.arch import ARCHES
from vmharness.guest import Guest

pytestmark = pytest.mark.vm

CSRC = Path(__file__).resolve().parents[2] / "csrc"
SOURCE = CSRC / "test" / "fault_payload.c"
PHYS_ADDR = 0x01000000  # the kit's default: the payload's code lies in the MiB above
# kind -> (vector, the kit's name for it)
FAULTS = {
    "de": (0, "#DE divide error"),
    "ud": (6, "#UD invalid opcode"),
    "gp": (13, "#GP general protection"),  # i386: a bad selector; x86_64: a non-canonical address
    "pf": (14, "#PF page fault"),  # x86_64: a canonical address outside the identity map
}
KINDS = {"i386": ["de", "ud", "gp"], "x86_64": ["de", "ud", "gp", "pf"]}
# arch -> kind -> the error code / CR2 the report's first line must show (only vectors that
# push an error code have one; only #PF shows CR2)
ERROR = {"i386": {"gp": 0x80}, "x86_64": {"gp": 0, "pf": 0}}
CR2 = {"x86_64": {"pf": 0x00007F0000000000}}
DIGITS = {"i386": 8, "x86_64": 16}
IP = {"i386": "EIP", "x86_64": "RIP"}
REGISTERS = {"i386": ["eax", "ebx", "ecx", "edx", "esi", "edi", "ebp", "esp", "cs", "eflags", "cr0", "cr3"],
             "x86_64": ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11",
                        "r12", "r13", "r14", "r15", "cs", "ss", "rflags", "cr0", "cr3"]}
STOCK = {"amd64": ("x86_64", "debian:linux-image-amd64"), "686-pae": ("i386", "debian:linux-image-686-pae")}
BALLAST = "/tmp/fault-ballast"  # 16 MiB of tmpfs whose checksum must survive every fault
GUEST_PAYLOAD = "/root/fault_{}"


@pytest.fixture(scope="session")
def fault_payloads(tmp_path_factory) -> dict[str, dict[str, Path]]:
    """arch -> kind -> fault_payload.c built with the kit for that arch and fault."""
    out = tmp_path_factory.mktemp("fault-payloads")
    payloads: dict[str, dict[str, Path]] = {}
    for arch, kinds in KINDS.items():
        for kind in kinds:
            payloads.setdefault(arch, {})[kind] = build_kit_payload(
                SOURCE, out / arch / f"fault_{kind}", arch, f"-DFAULT_VECTOR={FAULTS[kind][0]}")
    return payloads


def build_kit_payload(source: Path, out: Path, arch: str, cflags: str = "") -> Path:
    """source built with the payload kit for an arch kernel (csrc/Makefile PAYLOAD=), at out."""
    result = subprocess.run(["make", "-s", "-C", str(CSRC), f"PAYLOAD={source}", f"OUT={out}", f"ARCH={arch}",
                             f"EXTRA_CFLAGS={cflags}"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return out


def install(g: Guest, path: Path, dest: str) -> None:
    """Copy a host file into the guest through its console (gzip, base64, checksum)."""
    data = path.read_bytes()
    encoded = base64.encodebytes(gzip.compress(data, mtime=0)).decode()
    g.check(f"base64 -d <<'EOF' | gunzip > {dest}\n{encoded}EOF")
    assert g.check(f"sha256sum {dest}").split()[0] == hashlib.sha256(data).hexdigest()


def kit_report(output: str, arch: str) -> dict[str, object]:
    """The kit's one fault report in a jump's output: its first line's fields and the
    registers of the lines after it."""
    digits = DIGITS[arch]
    first = re.compile(rf"^kit: exception (\d+) at {IP[arch]}=0x([0-9a-f]{{{digits}}}) \(([^)]+)\)"
                       rf"(?: error=0x([0-9a-f]{{8}}))?(?: cr2=0x([0-9a-f]{{{digits}}}))?$", re.M)
    reports = first.findall(output)
    assert len(reports) == 1, output
    vector, ip, name, error, cr2 = reports[0]
    block = output.split(f"kit: exception {vector} at ", 1)[1]
    registers = dict(re.findall(r"\b(\w+)=0x([0-9a-f]+)\b", block.split("abandoned", 1)[0]))
    return {"vector": int(vector), "ip": int(ip, 16), "name": name,
            "error": int(error, 16) if error else None, "cr2": int(cr2, 16) if cr2 else None,
            "registers": registers}


def faults_and_comes_back(g: Guest, arch: str, kind: str, payload: Path) -> None:
    """Load the payload; calls 1 and 3 fault, call 2 runs normally; after each fault Linux
    runs and its memory is intact."""
    vector, name = FAULTS[kind]
    guest_path = GUEST_PAYLOAD.format(kind)
    install(g, payload, guest_path)
    g.check("kexec -u")
    g.check(f"dd if=/dev/urandom of={BALLAST} bs=1M count=16 2>/dev/null && sha256sum {BALLAST} > {BALLAST}.sum")
    g.check(f"kexec --load-preserve-context --args-none {guest_path}")

    fault_ip = None
    for call in (1, 2, 3):
        rc, output = g.run("kexec -e", timeout=JUMP_TIMEOUT)
        assert rc == 0, output  # no result channel yet: a fault still returns 0
        assert "kexec failed" not in output
        if call % 2:
            assert f"fault_payload: call {call} raises {name}\n" in output, output
            report = kit_report(output, arch)
            assert (report["vector"], report["name"]) == (vector, name)
            assert PHYS_ADDR <= report["ip"] < PHYS_ADDR + 0x100000, output  # in the payload's code
            assert report["error"] == ERROR.get(arch, {}).get(kind), output
            assert report["cr2"] == CR2.get(arch, {}).get(kind), output
            assert set(REGISTERS[arch]) <= set(report["registers"]), output
            assert fault_ip in (None, report["ip"])
            fault_ip = report["ip"]
            assert f"fault_payload: payload_fault: vector {vector} in call {call}\n" in output
            assert f"kit: call {call} abandoned after the fault; returning to the kernel\n" in output
            assert f"fault_payload: call {call}: no fault" not in output
            # Linux came back whole: a command runs, tmpfs is intact, the image still loaded
            assert g.check("echo linux-still-here").strip() == "linux-still-here"
            g.check(f"sha256sum -c {BALLAST}.sum", timeout=120)
            assert g.run("kexec -S -l").rc == 1
        else:  # called again, from the top, and it knows what happened last time
            width = DIGITS[arch]
            error = ERROR.get(arch, {}).get(kind) or 0
            assert (f"fault_payload: previous call {call - 1} faulted: vector {vector} error={error:#x}"
                    f" at 0x{fault_ip:0{width}x}\n") in output, output
            assert f"fault_payload: call {call} ok\n" in output, output
            assert "kit: exception" not in output and "kit_calls=" not in output, output
    g.check("kexec -u")
    g.check(f"rm -f {BALLAST} {BALLAST}.sum {guest_path}")
    assert not re.search(r"WARNING|BUG:|Oops", g.check("dmesg")), g.check("dmesg | tail -50")


@pytest.mark.parametrize("arch,kind", [(arch, kind) for arch in ARCHES for kind in KINDS[arch]])
def test_fault_returns_to_linux_on_our_kernel(arch_guest: Guest, arch: str, kind: str, fault_payloads) -> None:
    faults_and_comes_back(arch_guest, arch, kind, fault_payloads[arch][kind])


@pytest.mark.parametrize("flavour,kind", [(f, kind) for f, (arch, _) in STOCK.items() for kind in KINDS[arch]])
def test_fault_returns_to_linux_through_the_shim(shared_guests, flavour: str, kind: str, fault_payloads) -> None:
    arch = STOCK[flavour][0]
    faults_and_comes_back(shared_guests(*STOCK[flavour]), arch, kind, fault_payloads[arch][kind])
