"""Mutation fuzzing of every parser of outside input (fuzz_support.py says how):
real files, mutated, must parse or fail with a KexecError, never another
exception and never a hang.

Seeds: the payload kit's examples (phy_mode, entry_report) for i386 and x86_64
and purgatory.ro (built as conftest builds it), the tiny ELF payloads, a bzImage
around the setup header of a harness-built i386 or x86_64 kernel
(tests/data/bzimage-headers), and the recorded machine trees of
tests/data/memmaps. Each target runs 2,000 derandomized examples in the default
profile; KEXEC_PY_FUZZ=deep runs a longer random campaign.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz_support import Seed, field_map, hard_deadline, mutated
from kexec_py.bootparams import HDR, HDR_LIMIT, SetupHeader, header_offset
from kexec_py.errors import KexecError
from kexec_py.arch import ARCHES, I386, X86_64
from kexec_py.segments import KexecFlags
from kexec_py.image_file import ImageFile
from kexec_py.loaders import LoadRequest, Target, choose_loader
from kexec_py.memmap import read_iomem, read_memory_map, read_sysfs_memmap, read_total_ram
from kexec_py.planner import make_plan
from unit_support import MEMMAPS, REPO, recorded_tree

BZIMAGE_HEADERS = os.path.join(REPO, "tests", "data", "bzimage-headers")


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A directory for the files a target reads by path: on tmpfs when there is one
    (writing a machine tree there takes 0.4 ms, on a disk-backed /tmp 30 ms)."""
    import tempfile

    if os.access("/dev/shm", os.W_OK):
        directory = tempfile.mkdtemp(prefix="kexec-py-fuzz-", dir="/dev/shm")
        yield directory
        shutil.rmtree(directory, ignore_errors=True)
    else:
        yield str(tmp_path_factory.mktemp("fuzz"))


def tolerated(call, *args, **kwargs):
    """call(...) returns, or raises a KexecError: anything else fails the example."""
    with hard_deadline():
        try:
            return call(*args, **kwargs)
        except KexecError:
            return None


# --- seeds -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def kit_payloads(tmp_path_factory):
    """{arch: (phy_mode bytes, entry_report bytes)}, built by the payload kit."""
    import subprocess

    out = tmp_path_factory.mktemp("fuzz-kit")
    result = subprocess.run(["make", "-s", "-C", os.path.join(REPO, "csrc"), f"O={out}"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"make -C csrc O={out} failed:\n{result.stderr}"
    return {arch: tuple((out / arch / name).read_bytes() for name in ("phy_mode", "entry_report"))
            for arch in ("i386", "x86_64")}


@functools.lru_cache(maxsize=None)
def machine(name):
    return read_memory_map(recorded_tree(name))


MACHINES = {I386: "qemu-i386-512M", X86_64: "qemu-x86_64-512M"}


def plan_image(data: bytes, arch: Arch, request: LoadRequest, type_name=None):
    """What `kexec [--dry-run] -l` does with the file: probe, load, plan."""
    memory = machine(MACHINES[arch])
    image = ImageFile("fuzzed", memoryview(data))
    loaded = choose_loader(image, type_name, arch).load(image, request, Target(arch, memory))
    flags = arch.kexec_arch | (KexecFlags.PRESERVE_CONTEXT if request.preserve_context else 0)
    return make_plan(loaded, int(flags), memory, loaded.backup_window)


# --- ELF payloads (elf-x86 --args-none, --args-linux) -------------------------------------------

@pytest.fixture(scope="module")
def elf_seeds(kit_payloads, tiny_elf32, tiny_elf64):
    """{arch: [Seed, ...]}: the kit's examples and the tiny payloads."""
    seeds = {}
    for arch, tiny in ((I386, tiny_elf32), (X86_64, tiny_elf64)):
        with open(tiny, "rb") as f:
            files = {"phy_mode": kit_payloads[arch.name][0], "entry_report": kit_payloads[arch.name][1],
                     "tiny": f.read()}
        seeds[arch] = [Seed(f"{name}-{arch.name}", data, field_map(data)) for name, data in files.items()]
    return seeds


@given(st.data())
def test_elf_loader_survives_mutations(elf_seeds, purgatory_ro, data):
    arch = data.draw(st.sampled_from(list(ARCHES.values())), label="arch")
    seed = data.draw(st.sampled_from(elf_seeds[arch]), label="seed")
    image = data.draw(seed.mutants(), label="image")
    args = data.draw(st.sampled_from(["none", "linux"] if arch is I386 else ["none"]), label="args")
    request = LoadRequest(args, preserve_context=data.draw(st.booleans(), label="preserve"),
                          purgatory=purgatory_ro if args == "linux" else None)
    tolerated(plan_image, image, arch, request, data.draw(st.sampled_from([None, arch.image_type_names()[0]]), label="type"))


# --- bzImage: the setup header, placement, the zero page -----------------------------------------

PAYLOAD = bytes(range(256)) * 64  # 16 KiB of "protected-mode kernel"


def bzimage_around(setup_header: bytes, payload: bytes = PAYLOAD) -> bytes:
    """A bzImage: an empty boot sector and setup with setup_header at 0x1f1, then payload."""
    setup_sects = setup_header[0] or 4
    setup = bytearray((setup_sects + 1) * 512)
    setup[HDR : HDR + len(setup_header)] = setup_header
    return bytes(setup) + payload


@pytest.fixture(scope="module")
def bzimage_seeds():
    names = sorted(n for n in os.listdir(BZIMAGE_HEADERS) if n.endswith(".setup_header"))
    assert names, f"no recorded setup headers in {BZIMAGE_HEADERS}"
    seeds = []
    for name in names:
        with open(os.path.join(BZIMAGE_HEADERS, name), "rb") as f:
            seeds.append(Seed(name.split(".")[0], bzimage_around(f.read()), BZIMAGE_FIELDS))
    return seeds


def _bzimage_fields() -> list[tuple[int, int]]:
    from kexec_py.bootparams import _HEADER_FIELDS

    fields = [(header_offset(name), struct.calcsize("<" + fmt)) for name, fmt in _HEADER_FIELDS]
    return fields + [(0x201, 1), (HDR_LIMIT, 1)]  # the jump's length byte; just past the header


BZIMAGE_FIELDS = _bzimage_fields()


@pytest.fixture(scope="module")
def initrd(scratch):
    path = os.path.join(scratch, "initrd.img")
    with open(path, "wb") as f:
        f.write(b"\x1f\x8b" + bytes(0x3000))
    return path


@given(st.data())
def test_bzimage_loader_survives_mutations(bzimage_seeds, purgatory_ro, initrd, data):
    image = data.draw(data.draw(st.sampled_from(bzimage_seeds), label="seed").mutants(), label="image")
    with hard_deadline():
        try:
            header = SetupHeader.parse(image, "fuzzed")
        except KexecError:
            header = None
    if header is not None:
        assert header.raw == image[HDR : min(0x202 + image[0x201], HDR_LIMIT)]
    request = LoadRequest(command_line=data.draw(st.sampled_from([None, "console=ttyS0"]), label="cmdline"),
                          initrd=data.draw(st.sampled_from([None, initrd]), label="initrd"),
                          preserve_context=data.draw(st.booleans(), label="preserve"), purgatory=purgatory_ro)
    tolerated(plan_image, image, I386, request, data.draw(st.sampled_from([None, "bzImage"]), label="type"))


# --- purgatory.ro: its ELF relocatable object, linked into a bzImage load -----------------------

@pytest.fixture(scope="module")
def purgatory_seed(purgatory_ro):
    with open(purgatory_ro, "rb") as f:
        data = f.read()
    return Seed("purgatory.ro", data, field_map(data))


@given(st.data())
def test_purgatory_parser_survives_mutations(purgatory_seed, bzimage_seeds, scratch, data):
    path = os.path.join(scratch, "purgatory.ro")
    with open(path, "wb") as f:
        f.write(data.draw(purgatory_seed.mutants(), label="purgatory"))
    request = LoadRequest(command_line="console=ttyS0", preserve_context=data.draw(st.booleans(), label="preserve"),
                          purgatory=path)
    tolerated(plan_image, bzimage_seeds[0].data, I386, request, "bzImage")


# --- memory maps: sysfs memmap, /proc/iomem, /proc/meminfo ---------------------------------------

TREES = sorted(os.listdir(MEMMAPS))


def _read_tree(name: str) -> dict[str, bytes]:
    """{relative path: bytes} of a recorded machine tree."""
    root = os.path.join(MEMMAPS, name)
    files = {}
    for directory, _, names in os.walk(root):
        for n in names:
            path = os.path.join(directory, n)
            with open(path, "rb") as f:
                files[os.path.relpath(path, root)] = f.read()
    return files


RECORDED = {name: _read_tree(name) for name in TREES}
ENTRY_NAMES = st.sampled_from(["0", "7", "10", "-1", "x", "00", "007", "99999999999999999999"])
NUMBERS = st.sampled_from(["0", "1", "fff", "1000", "ffffffff", "100000000", "fffffffffffffff", "ffffffffffffffff",
                           "10000000000000000", "0x", "-1", "", " ", "1" * 40])
_NUMBER = re.compile(rb"[0-9a-fA-F]+")


def _renumbered(draw, text: bytes) -> tuple[bytes, str]:
    """text with one hex or decimal number replaced by a boundary value."""
    numbers = list(_NUMBER.finditer(text))
    if not numbers:
        return text, "no number"
    found = draw(st.sampled_from(numbers))
    value = draw(NUMBERS)
    return text[: found.start()] + value.encode() + text[found.end() :], f"{found.group().decode()} -> {value!r}"


class Tree(dict):
    """{relative path: bytes}; its repr (in hypothesis's report) lists the changes only."""

    def __repr__(self) -> str:
        return f"<{self.name} with {'; '.join(self.changes)}>"


@st.composite
def mutated_tree(draw, name: str, under: str) -> Tree:
    """A recorded machine tree with 1 to 4 changes to its files below `under`: text
    mutated (bytes, or a number replaced by a boundary value), a file removed, a sysfs
    entry renamed. Without sys/ in `under`, the tree has no sysfs memmap: read_memory_map
    then reads /proc/iomem."""
    files = {path: text for path, text in RECORDED[name].items() if path.startswith(under) or path.startswith("proc/")}
    tree = Tree(files)
    tree.name, tree.changes = name, []
    candidates = sorted(path for path in files if path.startswith(under))
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(candidates))
        action = draw(st.sampled_from(("mutate", "mutate", "number", "number", "remove", "rename")))
        if path not in tree:
            continue
        if action == "number":
            tree[path], what = _renumbered(draw, tree[path])
            tree.changes.append(f"{path}: {what}")
        elif action == "mutate":
            tree[path] = draw(mutated(tree[path], name=path))
            tree.changes.append(repr(tree[path]))
        elif action == "remove":
            del tree[path]
            tree.changes.append(f"{path} removed")
        elif path.startswith("sys/") and path.count("/") == 4:  # sys/firmware/memmap/N/file
            head, entry, file_name = path.rsplit("/", 2)
            renamed = f"{head}/{draw(ENTRY_NAMES)}/{file_name}"
            tree[renamed] = tree.pop(path)
            tree.changes.append(f"{path} moved to {renamed}")
    return tree


def write_files(root, files: dict[str, bytes]) -> str:
    shutil.rmtree(root, ignore_errors=True)
    for path, content in files.items():
        full = os.path.join(root, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(content)
    return str(root)


def read_map(root: str) -> list[bytes]:
    """The map as the planner uses it: usable RAM, and the next kernel's e820 entries packed
    as the zero page holds them."""
    from kexec_py.bootparams import e820_from_memory_map

    memory = read_memory_map(root)
    memory.ram()
    return [entry.pack() for entry in e820_from_memory_map(memory)]


TARGETS = {  # what the mutations touch: the readers that read it
    "sys/firmware/memmap/": (read_sysfs_memmap, read_map),
    "proc/iomem": (read_iomem, read_map),
    "proc/meminfo": (read_total_ram, read_map),
}


@pytest.mark.parametrize("under", TARGETS, ids=["sysfs-memmap", "iomem", "meminfo"])
@given(data=st.data())
def test_memory_map_readers_survive_mutations(scratch, under, data):
    tree = data.draw(mutated_tree(data.draw(st.sampled_from(TREES), label="machine"), under), label="tree")
    root = write_files(os.path.join(scratch, "tree"), tree)
    for reader in TARGETS[under]:
        tolerated(reader, root)
