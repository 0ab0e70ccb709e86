"""The harness's machine options: run-vm --disk SIZE and --nic MODEL (BootSpec's QEMU
arguments: a virtio-blk scratch disk, NICs on one hub and nothing else), the CPU topology,
the guest's writer and jump helpers of the device VM tests."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from vmharness import cli
from vmharness.artifacts import parse_size
from vmharness.guest import NIC_DEVICES, BootSpec, nic_mac
from vmharness.arch import ARCHES
from vmharness.kernel import Variant, required_settings

VM_TESTS = Path(__file__).resolve().parents[1] / "vm"


@pytest.mark.parametrize("text, size", [("64M", 64 << 20), ("1G", 1 << 30), ("8192K", 8 << 20),
                                        ("16MiB", 16 << 20), (str(5 << 20), 5 << 20), (4 << 20, 4 << 20)])
def test_parse_size(text, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "M", "64T", "-64M", "1M", "4194305", "64 MB x"])
def test_parse_size_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


def test_no_devices_by_default() -> None:
    argv = BootSpec(Path("bz"), Path("rd")).argv()
    assert not {"-drive", "-device", "-netdev", "-nic", "-net"} & set(argv)
    assert argv[argv.index("-smp") + 1] == "1,sockets=1"


def test_vga_is_the_std_vga_card_and_nothing_else() -> None:
    """run-vm --vga: QEMU's std VGA (SeaVGABIOS with VBE), for payloads that call int 10h."""
    argv = BootSpec(Path("bz"), Path("rd"), vga=True).argv()
    assert [argv[i + 1] for i, arg in enumerate(argv) if arg == "-device"] == ["VGA"]
    assert argv[argv.index("-display") + 1] == "none"


def test_every_cpu_is_a_socket_of_its_own() -> None:
    """SeaBIOS's MP table (our kernels have no ACPI) lists the first CPU of each package only."""
    argv = BootSpec(Path("bz"), Path("rd"), smp=4).argv()
    assert argv[argv.index("-smp") + 1] == "4,sockets=4"


def test_disk_and_nics_on_one_hub_and_nothing_else() -> None:
    argv = BootSpec(Path("bz"), Path("rd"), disk=Path("/run/x/disk.img"),
                    nics=("virtio-net", "e1000", "e1000")).argv()
    values = [argv[i + 1] for i, arg in enumerate(argv) if arg in ("-drive", "-device", "-netdev")]
    assert values == [
        "file=/run/x/disk.img,format=raw,if=none,id=disk0,cache=unsafe",
        "virtio-blk-pci,drive=disk0",
        "hubport,id=nic0,hubid=0", "virtio-net-pci,netdev=nic0,mac=52:54:00:00:00:01",
        "hubport,id=nic1,hubid=0", "e1000,netdev=nic1,mac=52:54:00:00:00:02",
        "hubport,id=nic2,hubid=0", "e1000,netdev=nic2,mac=52:54:00:00:00:03",
    ]
    # no user-mode networking, tap, bridge or socket: frames never leave QEMU
    assert not any(v.startswith(("user", "tap", "bridge", "socket")) for v in values)
    assert "-nic" not in argv and "-net" not in argv


def test_nic_macs_differ() -> None:
    assert len({nic_mac(i) for i in range(8)}) == 8


def test_run_vm_disk_and_nics(capsys) -> None:
    args = cli.parse_args(["--disk", "64M", "--nic", "virtio-net", "--nic", "e1000", "--shell"])
    assert args.disk == 64 << 20 and args.nics == ["virtio-net", "e1000"]
    assert cli.parse_args(["--shell"]).disk is None and cli.parse_args(["--shell"]).nics == []
    for bad in (["--disk", "lots"], ["--nic", "rtl8139"]):
        with pytest.raises(SystemExit):
            cli.parse_args([*bad, "--shell"])
    assert set(NIC_DEVICES) == {"virtio-net", "e1000"}


@pytest.mark.parametrize("arch", list(ARCHES))
def test_kernel_fragment_has_smp_devices_and_namespaces(arch: str) -> None:
    wanted = required_settings(Variant.PATCHED, ARCHES[arch])
    for symbol in ("SMP", "HOTPLUG_CPU", "PM_SLEEP_SMP", "X86_MPPARSE", "PCI", "VIRTIO_PCI",
                   "VIRTIO_BLK", "VIRTIO_NET", "E1000", "EXT4_FS", "NET_NS", "KEXEC_JUMP"):
        assert wanted[f"CONFIG_{symbol}"] == "y", symbol


def test_disk_writer_round_trip(tmp_path: Path) -> None:
    writer = VM_TESTS / "disk_writer.py"
    records, acks = tmp_path / "records", tmp_path / "acks"
    proc = subprocess.Popen([sys.executable, writer, "write", records, acks])
    try:
        while not acks.exists() or int(acks.read_text() or 0) < 3:
            assert proc.poll() is None
            time.sleep(0.05)
    finally:
        proc.terminate()
    assert proc.wait(timeout=30) == 0
    acked = int(acks.read_text())
    verify = subprocess.run([sys.executable, writer, "verify", records], capture_output=True, text=True)
    assert verify.returncode == 0 and int(verify.stdout) == acked

    with open(records, "r+b") as f:   # a torn last record
        f.truncate(records.stat().st_size - 1)
    verify = subprocess.run([sys.executable, writer, "verify", records], capture_output=True, text=True)
    assert verify.returncode == 1 and int(verify.stdout.split()[-1]) == acked - 1
