"""The fixes the bad-input table (tests/vm/test_bad_input.py) led to, each at its own
level: inputs that printed a traceback (/dev/null and other non-regular files, --mem-min
above the top of RAM, a file mmap refuses), hung (a FIFO as the image), or passed a value
the kernel would have truncated (an address over 64 bits, a jump-back entry over 32 bits
on i386), and ELF program header tables that lie outside the file."""

from __future__ import annotations

import errno
import mmap
import os
import socket
import subprocess
import sys

import pytest

from kexec_py import cli
from kexec_py.errors import ImageError, KexecError, PlanError
from kexec_py.options import parse_address
from kexec_py.arch import I386, X86_64
from kexec_py.image_file import ImageFile
from kexec_py.jump_back import jump_back_plan
from kexec_py.loaders import LoadRequest, Target
from kexec_py.loaders.elf_x86 import loader
from kexec_py.memmap import read_memory_map
from kexec_py.planner import limits_window
from unit_support import REPO, ElfPatcher, recorded_tree

QEMU_I386 = ["--arch", "i386", "--machine-root", recorded_tree("qemu-i386-512M")]
TOP_OF_RAM = 0x1FFDFFFF  # the last byte of System RAM in the recorded 512 MiB guest


# --- image files that are no regular files --------------------------------------------------------

def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("path, kind", [("/dev/null", "a character device"), ("/dev/zero", "a character device")])
def test_devices_are_refused_in_one_line(path, kind):
    before = open_fds()
    with pytest.raises(ImageError) as refused:
        ImageFile.open(path)
    assert str(refused.value) == f"{path}: is {kind}, not an image"
    assert refused.value.__cause__ is None and refused.value.exit_code == 255
    assert open_fds() == before, "the descriptor of a refused file is closed"


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ImageError, match=rf"^{fifo}: is a FIFO \(named pipe\), not an image$"):
        ImageFile.open(str(fifo))  # before the fix: open() blocked until someone wrote


def test_a_socket_cannot_be_opened(tmp_path):
    path = tmp_path / "socket"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        with pytest.raises(ImageError, match=rf"^cannot open {path}: No such device or address$"):
            ImageFile.open(str(path))


def test_a_directory_still_says_so(tmp_path):
    with pytest.raises(ImageError, match=rf"^{tmp_path}: is a directory, not an image$"):
        ImageFile.open(str(tmp_path))


def test_a_regular_file_mmap_refuses(tmp_path, monkeypatch):
    """/proc and /sys files are regular but cannot be mapped (ENODEV, EIO): one line, no traceback."""
    path = tmp_path / "attribute"
    path.write_bytes(b"0\n")

    def refuse(*args, **kwargs):
        raise OSError(errno.ENODEV, os.strerror(errno.ENODEV))

    monkeypatch.setattr(mmap, "mmap", refuse)
    before = open_fds()
    with pytest.raises(ImageError) as refused:
        ImageFile.open(str(path))
    assert str(refused.value) == f"{path}: cannot map the file (No such device): not an image"
    assert open_fds() == before


def test_a_good_file_is_still_mapped(tiny_elf32):
    image = ImageFile.open(tiny_elf32)
    assert bytes(image.data[:4]) == b"\x7fELF"


def test_an_initrd_that_is_a_device(tmp_path):
    from kexec_py.linux_boot import _open_initrd

    with pytest.raises(ImageError, match=r"^initrd: /dev/null: is a character device, not an image$"):
        _open_initrd("/dev/null")


# --- --mem-min above the top of RAM ---------------------------------------------------------------

@pytest.fixture(scope="module")
def qemu_512():
    return read_memory_map(recorded_tree("qemu-i386-512M"))


def test_mem_min_above_the_top_of_ram(qemu_512):
    with pytest.raises(PlanError) as refused:
        limits_window(qemu_512, 0x40000000, None)
    assert str(refused.value) == (
        f"--mem-min 0x40000000 is above the top of RAM ({TOP_OF_RAM:#x} in {qemu_512.source}):"
        " the window [--mem-min, --mem-max] holds no RAM")
    with pytest.raises(PlanError, match="is above the top of RAM"):
        limits_window(qemu_512, 0x40000000, 0x4FFFFFFF)


def test_mem_min_at_the_top_of_ram_is_a_window(qemu_512):
    window = limits_window(qemu_512, TOP_OF_RAM, None)
    assert (window.start, window.end) == (TOP_OF_RAM, TOP_OF_RAM + 1)


def test_mem_max_below_mem_min_is_a_plan_error_too(qemu_512):
    with pytest.raises(PlanError, match=r"^--mem-max 0x1000000 is below --mem-min 0x2000000$"):
        limits_window(qemu_512, 0x2000000, 0x1000000)


@pytest.mark.parametrize("load", [["--load-preserve-context", "--args-none"], ["-l"]], ids=["elf", "bzimage"])
def test_mem_min_above_ram_through_the_cli(run_cli, tiny_elf32, tmp_path, load):
    """The ELF loader and the Linux loaders (placement limits) both go through limits_window."""
    if load == ["-l"]:
        from test_bzimage import bzimage_bytes

        image = tmp_path / "bzImage"
        image.write_bytes(bzimage_bytes())
    else:
        image = tiny_elf32
    result = run_cli(QEMU_I386 + ["--dry-run", *load, "--mem-min", "0x40000000", image])
    assert result.code == 255 and result.out == ""
    assert result.err.startswith("kexec: --mem-min 0x40000000 is above the top of RAM (0x1ffdffff in ")
    assert result.err.count("\n") == 1


@pytest.mark.parametrize("argv, message", [
    (["--load-preserve-context", "--args-none", "/dev/null"], "kexec: /dev/null: is a character device, not an image\n"),
    (["--load-preserve-context", "--args-none", "--mem-min", "0x40000000", "IMG"],
     "kexec: --mem-min 0x40000000 is above the top of RAM (0x1ffdffff in "),
], ids=["dev-null", "mem-min-above-ram"])
def test_the_two_reported_tracebacks_end_to_end(tiny_elf32, argv, message):
    """python3 -m kexec_py, as the issue reported them: one line, exit 255, no traceback."""
    argv = [tiny_elf32 if a == "IMG" else a for a in argv]
    result = subprocess.run([sys.executable, "-m", "kexec_py", *QEMU_I386, "--dry-run", *argv], cwd=REPO,
                            env=dict(os.environ, PYTHONPATH=REPO), capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (255, "")
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1, result.stderr


# --- numbers the kernel would truncate --------------------------------------------------------------

def test_addresses_fit_in_64_bits():
    assert parse_address("0xffffffffffffffff") == (1 << 64) - 1
    assert parse_address("18446744073709551615") == (1 << 64) - 1
    for text in ("0x10000000000000000", "18446744073709551616", "02000000000000000000000"):
        with pytest.raises(Exception, match=r"does not fit in 64 bits"):
            parse_address(text)


def test_jump_back_entry_fits_the_arch():
    assert jump_back_plan(0xFFFFF000, I386, "--entry").entry == 0xFFFFF000
    assert jump_back_plan(0x100000000, X86_64, "--entry").entry == 0x100000000
    with pytest.raises(KexecError) as refused:
        jump_back_plan(0x100000000, I386, "--entry")
    assert str(refused.value) == ("nothing to jump back to: 0x100000000 (--entry) is beyond the 32-bit address"
                                  " space of an i386 kernel")


def test_jump_back_entry_from_the_command_line_fits_too(run_cli, tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "cmdline").write_text("console=ttyS0 kexec_jump_back_entry=0x1234567890\n")
    result = run_cli(["--arch", "i386", "--machine-root", tmp_path, "--dry-run", "--load-jump-back-helper"])
    assert (result.code, result.err) == (255, "kexec: nothing to jump back to: 0x1234567890"
                                              f" ({tmp_path}/proc/cmdline) is beyond the 32-bit address space"
                                              " of an i386 kernel\n")


# --- ELF program header tables outside the file ----------------------------------------------------

MEMORY = read_memory_map(recorded_tree("qemu-i386-512M"))


def load(path, arch=I386):
    return loader("elf-x86").load(ImageFile.open(str(path)), LoadRequest("none"), Target(arch, MEMORY))


@pytest.mark.parametrize("fixture, arch, header", [("tiny_elf32", I386, 52), ("tiny_elf64", X86_64, 64)])
def test_shorter_than_the_elf_header(request, tmp_path, fixture, arch, header):
    data = open(request.getfixturevalue(fixture), "rb").read()
    for length in (5, 10, header - 1):
        path = tmp_path / f"cut-{length}"
        path.write_bytes(data[:length])
        with pytest.raises(ImageError) as refused:
            load(path, arch)
        assert str(refused.value) == (f"{path}: truncated or damaged ELF ({length} bytes, the ELF header alone"
                                      f" takes {header})")


@pytest.mark.parametrize("change, table", [
    (("e_phoff", 0x10000), "2 entries at 0x10000"),
    (("e_phnum", 0xFFF0), "65520 entries at 0x34"),
])
def test_program_header_table_past_the_end(tiny_elf32, tmp_path, change, table):
    """Before: pyelftools read program headers from past the end of the file (a phnum of
    0xfff0 parsed section data as PT_LOADs and complained about their alignment)."""
    path = ElfPatcher(tiny_elf32).set(*change).write(tmp_path / "patched")
    size = os.path.getsize(path)
    with pytest.raises(ImageError) as refused:
        load(path)
    assert str(refused.value) == (f"{path}: truncated or damaged ELF (the program header table, {table}, runs"
                                  f" past the end of the file, {size:#x} bytes)")


def test_program_header_entry_size(tiny_elf32, tmp_path):
    path = ElfPatcher(tiny_elf32).set("e_phentsize", 16).write(tmp_path / "patched")
    with pytest.raises(ImageError) as refused:
        load(path)
    assert str(refused.value) == (f"{path}: truncated or damaged ELF (e_phentsize is 16, ELF32 program headers"
                                  " take 32 bytes)")
