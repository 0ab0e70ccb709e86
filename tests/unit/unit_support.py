"""Helpers shared by the unit tests (imported by name; fixtures live in conftest.py):
recorded machine trees, memory-map tree builders, ELF builders (system gcc) and
patchers (struct), and a recording fake of the kernel interface."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from dataclasses import dataclass, field

import pytest

from kexec_py import shim
from kexec_py.errors import KernelError
from kexec_py.memmap import MemoryMap, MemoryRegion
from kexec_py.ranges import Range

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MEMMAPS = os.path.join(REPO, "tests", "data", "memmaps")
HOST_TREE = os.path.join(MEMMAPS, "host-x86_64")


def recorded_tree(name: str) -> str:
    """A machine recorded under tests/data/memmaps/; fails (not skips) if absent."""
    path = os.path.join(MEMMAPS, name)
    if not os.path.isdir(path):
        pytest.fail(f"recorded machine tree {path} is missing")
    return path


# --- memory maps -----------------------------------------------------------------------------

# the states of a kernel's module tree besides a modules.dep text, for write_module_tree
NO_TREE, NO_DEPMOD = "no lib/modules/<release>", "no modules.dep"


def write_module_tree(root, release: str, modules_dep: str) -> None:
    """lib/modules/<release> below root: none (NO_TREE), the directory without
    modules.dep (NO_DEPMOD), or with modules_dep as its modules.dep."""
    if modules_dep == NO_TREE:
        return
    tree = os.path.join(root, "lib/modules", release)
    os.makedirs(tree)
    if modules_dep != NO_DEPMOD:
        with open(os.path.join(tree, "modules.dep"), "w") as f:
            f.write(modules_dep)


def ram_map(*ram: tuple[int, int], total_ram: int, reserved=()) -> MemoryMap:
    """A MemoryMap from [start, end) pairs, as planner tests need it."""
    regions = [MemoryRegion(Range(s, e), "System RAM") for s, e in ram]
    regions += [MemoryRegion(Range(s, e), "Reserved") for s, e in reserved]
    return MemoryMap(tuple(sorted(regions, key=lambda r: r.range)), total_ram, "test map")


def write_tree(root, sysfs=None, iomem=None, meminfo_kb=None) -> str:
    """A machine tree below root as the kernel lays it out.

    sysfs: list of (start, inclusive end, type) -> sys/firmware/memmap/N/{start,end,type}
    iomem: the text of proc/iomem; meminfo_kb: MemTotal in kB (None: no meminfo file).
    """
    root = str(root)
    if sysfs is not None:
        base = os.path.join(root, "sys", "firmware", "memmap")
        os.makedirs(base)
        for n, (start, end, kind) in enumerate(sysfs):
            entry = os.path.join(base, str(n))
            os.mkdir(entry)
            for name, text in (("start", f"{start:#x}"), ("end", f"{end:#x}"), ("type", kind)):
                with open(os.path.join(entry, name), "w") as f:
                    f.write(text + "\n")
    if iomem is not None:
        os.makedirs(os.path.join(root, "proc"), exist_ok=True)
        with open(os.path.join(root, "proc", "iomem"), "w") as f:
            f.write(iomem)
    if meminfo_kb is not None:
        os.makedirs(os.path.join(root, "proc"), exist_ok=True)
        with open(os.path.join(root, "proc", "meminfo"), "w") as f:
            f.write(f"MemTotal:       {meminfo_kb} kB\nMemFree:        1024 kB\n")
    return root


# --- ELF files -------------------------------------------------------------------------------

PHYS = 0x01000000

# A payload whose layout is known to the byte: `jmp _start` (eb fe) in .text,
# one .long in .data, 0x2000 bytes of .bss right after it.
TINY_ASM = """\
\t.text
\t.globl _start
_start:\tjmp _start
\t.data
counter:\t.long 5
\t.bss
big:\t.skip 0x2000
"""

# text PT_LOAD at PHYS; data+bss PT_LOAD at the next page. vaddr = paddr unless virt is given.
TWO_LOADS_LD = """\
ENTRY(_start)
PHDRS {{ text PT_LOAD; data PT_LOAD; }}
SECTIONS {{
  . = {virt:#x};
  .text : AT({phys:#x}) {{ *(.text*) }} :text
  . = ALIGN(4096);
  .data : AT({phys:#x} + 0x1000) {{ *(.data*) }} :data
  .bss : {{ *(.bss*) *(COMMON) }} :data
  /DISCARD/ : {{ *(.note*) *(.comment) *(.eh_frame*) }}
}}
"""

# What the tiny payload's two PT_LOADs become: (mem, memsz page-rounded, file bytes).
TINY_SEGMENTS = [
    (PHYS, 0x1000, b"\xeb\xfe"),  # .text: 2 bytes
    (PHYS + 0x1000, 0x3000, struct.pack("<I", 5)),  # .data 4 bytes + .bss 0x2000 -> 0x2004 -> 3 pages
]


class ElfBuilder:
    """Builds ELF files with the system gcc (no libc: -nostdlib -static)."""

    def __init__(self, directory):
        self.directory = str(directory)
        self.count = 0

    def _path(self, name):
        self.count += 1
        return os.path.join(self.directory, f"{self.count}-{name}")

    def _write(self, name, text):
        path = self._path(name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def gcc(self, name, source, suffix, bits, *options) -> str:
        if shutil.which("gcc") is None:
            pytest.fail("the ELF tests need the system gcc (apt-get install build-essential)")
        src = self._write(name + suffix, source)
        out = self._path(name)
        cmd = ["gcc", f"-m{bits}", *options, "-o", out, src]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode:
            pytest.fail(f"{' '.join(cmd)} failed:\n{result.stderr}")
        return out

    def tiny(self, bits: int, phys: int = PHYS, virt: int | None = None) -> str:
        """TINY_ASM linked by TWO_LOADS_LD: an ET_EXEC with exactly TINY_SEGMENTS (at phys)."""
        script = self._write("tiny.ld", TWO_LOADS_LD.format(phys=phys, virt=phys if virt is None else virt))
        return self.gcc(f"tiny{bits}", TINY_ASM, ".S", bits, "-nostdlib", "-static", "-no-pie",
                        f"-Wl,-T,{script}", "-Wl,--build-id=none")


class ElfPatcher:
    """Rewrites header fields of an ELF file by name, for images gcc will not make."""

    EHDR = {  # field: (offset in ELF32, offset in ELF64, size in ELF32, size in ELF64)
        "e_type": (16, 16, 2, 2),
        "e_machine": (18, 18, 2, 2),
        "e_entry": (24, 24, 4, 8),
        "e_phoff": (28, 32, 4, 8),
        "e_phentsize": (42, 54, 2, 2),
        "e_phnum": (44, 56, 2, 2),
    }
    PHDR = {
        "p_type": (0, 0, 4, 4),
        "p_offset": (4, 8, 4, 8),
        "p_vaddr": (8, 16, 4, 8),
        "p_paddr": (12, 24, 4, 8),
        "p_filesz": (16, 32, 4, 8),
        "p_memsz": (20, 40, 4, 8),
    }
    FORMATS = {2: "<H", 4: "<I", 8: "<Q"}

    def __init__(self, path: str):
        with open(path, "rb") as f:
            self.data = bytearray(f.read())
        assert self.data[:4] == b"\x7fELF"
        self.is64 = self.data[4] == 2

    def _field(self, table, name, base=0):
        off32, off64, size32, size64 = table[name]
        offset, size = (off64, size64) if self.is64 else (off32, size32)
        return base + offset, self.FORMATS[size]

    def get(self, name: str) -> int:
        offset, fmt = self._field(self.EHDR, name)
        return struct.unpack_from(fmt, self.data, offset)[0]

    def set(self, name: str, value: int) -> ElfPatcher:
        offset, fmt = self._field(self.EHDR, name)
        struct.pack_into(fmt, self.data, offset, value)
        return self

    def set_phdr(self, index: int, name: str, value: int) -> ElfPatcher:
        base = self.get("e_phoff") + index * self.get("e_phentsize")
        offset, fmt = self._field(self.PHDR, name, base)
        struct.pack_into(fmt, self.data, offset, value)
        return self

    def get_phdr(self, index: int, name: str) -> int:
        base = self.get("e_phoff") + index * self.get("e_phentsize")
        offset, fmt = self._field(self.PHDR, name, base)
        return struct.unpack_from(fmt, self.data, offset)[0]

    def write(self, path) -> str:
        with open(path, "wb") as f:
            f.write(self.data)
        return str(path)


# --- the kernel interface, faked -------------------------------------------------------------

class SavedInterfaces:
    """What a fake interfaces_down() hands back (test_netif fakes the real thing)."""

    def describe(self) -> str:
        return "ifdown: (fake) nothing"


@dataclass
class FakeKernel:
    """Records what the CLI asks of the kernel; `fail` maps a method name to the
    errno its call raises KernelError with. Calls are recorded as PREFIX + name, so
    that a FakeKernel and a FakeShim may share one `calls` list."""

    loaded: bool = False
    crash_loaded: bool = False
    fail: dict = field(default_factory=dict)
    calls: list = field(default_factory=list)
    plans: list = field(default_factory=list)
    unload_flags: list = field(default_factory=list)

    PREFIX = ""
    name = "kernel"

    def _call(self, name):
        self.calls.append(self.PREFIX + name)
        if name in self.fail:
            err = self.fail[name]
            raise KernelError(f"{self.PREFIX}{name} failed: {os.strerror(err)}", err)

    def kexec_load(self, plan):
        self._call("kexec_load")
        self.plans.append(plan)
        self.loaded = True

    def kexec_unload(self, flags):
        self._call("kexec_unload")
        self.unload_flags.append(flags)
        self.loaded = False

    def kexec_file_load(self, load):
        self._call("kexec_file_load")
        self.plans.append(load)
        self.loaded = True

    def kexec_file_unload(self, flags):
        self._call("kexec_file_unload")
        self.unload_flags.append(flags)
        self.loaded = False

    def kexec_loaded(self, crash=False):
        self._call("kexec_crash_loaded" if crash else "kexec_loaded")
        return self.crash_loaded if crash else self.loaded

    def sync(self):
        self._call("sync")

    def interfaces_down(self):
        self._call("interfaces_down")
        return SavedInterfaces()

    def interfaces_restore(self, saved):
        self._call("interfaces_restore")

    def reboot_kexec(self):
        self._call("reboot_kexec")  # a preserve-context image ran and came back

    def shutdown_reboot(self):
        self._call("shutdown_reboot")


@dataclass
class FakeShim(FakeKernel):
    """The same for /dev/kexec_jump (kexec_py.shim.ShimKernel): `present` says whether
    the device node exists, `modprobe` whether available() would make it appear.
    Without the device, nothing is recorded but available() (the real class only stats)."""

    present_: bool = False
    modprobe: bool = False

    PREFIX = "shim."
    name = "kexec_jump module"

    def present(self):
        return self.present_

    def available(self):
        self._call("available")
        self.present_ = self.present_ or self.modprobe
        return self.present_

    def kexec_loaded(self, crash=False):
        return self.present_ and super().kexec_loaded(crash)


# --- /dev/kexec_jump's system calls, faked (kexec_py.shim.DeviceCalls) -----------------------

_IOCTL_NAMES = {shim.KJ_LOAD: "KJ_LOAD", shim.KJ_EXEC: "KJ_EXEC", shim.KJ_UNLOAD: "KJ_UNLOAD", shim.KJ_STATUS: "KJ_STATUS",
         shim.SNAPSHOT_FREEZE: "FREEZE", shim.SNAPSHOT_UNFREEZE: "UNFREEZE"}


class FakeDevice:
    """shim.DeviceCalls, recorded: ("open", "kexec_jump", "O_RDWR"), ("ioctl", "FREEZE"), ("close", "snapshot").
    fail maps ("open", name) or ("ioctl", NAME) to an errno; `frozen` follows FREEZE, UNFREEZE and close."""

    def __init__(self, fail=None, status=None, log=None):
        self.fail = fail or {}
        self.status = status or bytes(32)
        self.log = [] if log is None else log
        self.fds, self.memory, self.loads = {}, {}, []
        self.frozen = False
        self.next_fd, self.next_address = 3, 0x10000
        self.pinned = set()

    def _maybe_fail(self, key):
        if key in self.fail:
            err = self.fail[key]
            raise OSError(err, os.strerror(err))

    def open(self, path, flags):
        name = os.path.basename(path)
        mode = {os.O_RDWR: "O_RDWR", os.O_WRONLY: "O_WRONLY", os.O_RDONLY: "O_RDONLY"}[flags & os.O_ACCMODE]
        self.log.append(("open", name, mode))
        self._maybe_fail(("open", name))
        self.next_fd += 1
        self.fds[self.next_fd] = name
        return self.next_fd

    def close(self, fd):
        name = self.fds.pop(fd)
        self.log.append(("close", name))
        if name == "snapshot":
            self.frozen = False  # closing /dev/snapshot thaws

    def ioctl(self, fd, request, arg=0):
        name = _IOCTL_NAMES[request]
        self.log.append(("ioctl", name))
        assert self.fds[fd] == ("snapshot" if name in ("FREEZE", "UNFREEZE") else "kexec_jump"), (name, self.fds[fd])
        if name == "KJ_LOAD":  # what the module would copy_from_user, read while the pins hold
            entry, table, nr, flags = shim.KJ_LOAD_ARG.unpack(arg)
            rows = [shim.KJ_SEGMENT.unpack_from(self.memory[table], i * 32) for i in range(nr)]
            assert all(r[0] == 0 or r[0] in self.pinned for r in rows) and table in self.pinned
            self.loads.append((entry, nr, flags, [(self.memory.get(b, b"")[:n], n, m, ms) for b, n, m, ms in rows]))
        self._maybe_fail(("ioctl", name))
        if name == "FREEZE":
            self.frozen = True
        elif name == "UNFREEZE":
            self.frozen = False
        elif name == "KJ_STATUS":
            arg[:] = self.status

    def pin(self, buffers):
        addresses = []
        for buf in buffers:
            if not len(buf):
                addresses.append(0)
                continue
            self.next_address += 0x1000
            self.memory[self.next_address] = bytes(buf)
            self.pinned.add(self.next_address)
            addresses.append(self.next_address)
        return addresses

    def unpin(self):
        self.log.append(("unpin",))
        self.pinned.clear()


@dataclass
class CliResult:
    code: int
    out: str
    err: str