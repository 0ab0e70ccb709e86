"""Mutation fuzzing of kexec-py's parsers with hypothesis (used by test_fuzz.py).

Inputs are real files mutated: byte flips, truncations, insertions, deletions
and overwrites of header fields with boundary values. `field_map()` finds the
fields of an ELF file (ELF header, program and section headers, symbols,
relocations) so that overwrites hit what a parser reads, not only padding.

The property every target checks: the parser returns, or raises a KexecError
(the one-line error the CLI prints); anything else escaping is a bug. A hang
is caught twice: hypothesis's deadline fails an example that is slow, and
hard_deadline() interrupts one that never ends.

Profiles (KEXEC_PY_FUZZ=NAME selects one):
  ci    the default: 2,000 examples per target, derandomized, no example
        database, so every run (and CI) tries the same inputs
  deep  a local campaign: 20,000 random examples per target
"""

from __future__ import annotations

import contextlib
import os
import signal
import struct
from datetime import timedelta
from typing import Iterator, Sequence

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# A slow example fails its test after the deadline; one that loops forever is
# interrupted after HARD_DEADLINE. Both far above the few milliseconds a parse takes.
DEADLINE = timedelta(seconds=5)
HARD_DEADLINE = 30

_COMMON = dict(
    deadline=DEADLINE,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("ci", max_examples=2000, derandomize=True, **_COMMON)
settings.register_profile("deep", max_examples=20000, **_COMMON)
settings.load_profile(os.environ.get("KEXEC_PY_FUZZ", "ci"))

# Values that break parsers: zero, sign and width boundaries, page sizes.
INTERESTING = (
    0, 1, 2, 3, 4, 7, 8, 0x10, 0x20, 0x3F, 0x40, 0x7F, 0x80, 0xFF, 0x100, 0x1FF, 0x200, 0xFFF,
    0x1000, 0x1001, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x100000, 0x7FFFFFFF, 0x80000000,
    0xFFFFF000, 0xFFFFFFFE, 0xFFFFFFFF, 0x100000000, 0x7FFFFFFFFFFFFFFF, 0x8000000000000000,
    0xFFFFFFFFFFFFFFFF,
)

Field = tuple  # (offset, size in bytes)


class Mutant(bytes):
    """A mutated file; its repr (in hypothesis's report) names the seed and the steps, not the bytes."""

    seed: str
    steps: tuple

    def __repr__(self) -> str:
        return f"<{self.seed} ({len(self)} bytes) after {', '.join(self.steps) or 'nothing'}>"


class Seed:
    """A real file to mutate, with the (offset, size) of the fields its parser reads."""

    def __init__(self, name: str, data: bytes, fields: Sequence[Field] = ()) -> None:
        self.name, self.data, self.fields = name, bytes(data), tuple(fields)

    def __repr__(self) -> str:
        return self.name

    def mutants(self, max_mutations: int = 6) -> st.SearchStrategy:
        return mutated(self.data, self.fields, max_mutations, self.name)


class Hang(Exception):
    """Raised into a parse that outlived HARD_DEADLINE (not a KexecError: it fails the test)."""


@contextlib.contextmanager
def hard_deadline(seconds: int = HARD_DEADLINE) -> Iterator[None]:
    """Interrupt the body with Hang after seconds (SIGALRM, main thread only)."""

    def expired(signum, frame):
        raise Hang(f"no answer after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _position(draw, data: bytearray, hot: Sequence[int], end_inclusive: bool) -> int:
    limit = len(data) if end_inclusive else len(data) - 1
    near = [p for p in hot if 0 <= p <= limit]
    if near and draw(st.booleans()):
        return draw(st.sampled_from(near))
    return draw(st.integers(0, limit))


@st.composite
def mutated(draw, seed: bytes, fields: Sequence[Field] = (), max_mutations: int = 6, name: str = "seed") -> Mutant:
    """seed after 1..max_mutations mutations, each one of: flip a bit, set a byte,
    overwrite a field (little-endian) with a boundary value or one near the file
    size, truncate, insert bytes (random, or a copy from elsewhere), delete bytes.
    Positions favour the starts and ends of fields."""
    data = bytearray(seed)
    steps = []
    hot = sorted({p for offset, size in fields for p in (offset, offset + size)})
    for _ in range(draw(st.integers(1, max_mutations))):
        kind = draw(st.sampled_from(("field", "flip", "byte", "truncate", "insert", "delete")))
        if kind == "field" and fields:
            offset, size = draw(st.sampled_from(fields))
            if offset + size > len(data):
                continue
            value = draw(st.one_of(
                st.sampled_from(INTERESTING),
                st.integers(0, (1 << (8 * size)) - 1),
                st.integers(-16, 16).map(lambda d: len(data) + d),
            ))
            mask = (1 << (8 * size)) - 1
            data[offset : offset + size] = (value & mask).to_bytes(size, "little")
            steps.append(f"{offset:#x}/{size} = {value & mask:#x}")
        elif kind in ("flip", "byte", "field") and data:
            at = _position(draw, data, hot, end_inclusive=False)
            if kind == "flip":
                bit = draw(st.integers(0, 7))
                data[at] ^= 1 << bit
                steps.append(f"flip {at:#x} bit {bit}")
            else:
                data[at] = draw(st.integers(0, 255))
                steps.append(f"{at:#x} = {data[at]:#04x}")
        elif kind == "truncate":
            at = _position(draw, data, hot, end_inclusive=True)
            del data[at:]
            steps.append(f"truncate at {at:#x}")
        elif kind == "insert":
            at = _position(draw, data, hot, end_inclusive=True)
            if data and draw(st.booleans()):
                start = draw(st.integers(0, len(data) - 1))
                chunk = bytes(data[start : start + draw(st.integers(1, 256))])
            else:
                chunk = draw(st.binary(min_size=1, max_size=64))
            data[at:at] = chunk
            steps.append(f"insert {chunk.hex()} at {at:#x}")
        elif kind == "delete" and data:
            at = _position(draw, data, hot, end_inclusive=False)
            count = draw(st.integers(1, 64))
            del data[at : at + count]
            steps.append(f"delete {count} bytes at {at:#x}")
    mutant = Mutant(data)
    mutant.seed, mutant.steps = name, tuple(steps)
    return mutant


# --- where an ELF file keeps its fields --------------------------------------------------------

# (name, ELF32 offset, ELF32 size, ELF64 offset, ELF64 size)
_EHDR = (
    ("e_ident[EI_CLASS]", 4, 1, 4, 1), ("e_ident[EI_DATA]", 5, 1, 5, 1), ("e_ident[EI_VERSION]", 6, 1, 6, 1),
    ("e_type", 16, 2, 16, 2), ("e_machine", 18, 2, 18, 2), ("e_version", 20, 4, 20, 4),
    ("e_entry", 24, 4, 24, 8), ("e_phoff", 28, 4, 32, 8), ("e_shoff", 32, 4, 40, 8),
    ("e_flags", 36, 4, 48, 4), ("e_ehsize", 40, 2, 52, 2), ("e_phentsize", 42, 2, 54, 2),
    ("e_phnum", 44, 2, 56, 2), ("e_shentsize", 46, 2, 58, 2), ("e_shnum", 48, 2, 60, 2),
    ("e_shstrndx", 50, 2, 62, 2),
)
_PHDR = (
    ("p_type", 0, 4, 0, 4), ("p_offset", 4, 4, 8, 8), ("p_vaddr", 8, 4, 16, 8), ("p_paddr", 12, 4, 24, 8),
    ("p_filesz", 16, 4, 32, 8), ("p_memsz", 20, 4, 40, 8), ("p_flags", 24, 4, 4, 4), ("p_align", 28, 4, 48, 8),
)
_SHDR = (
    ("sh_name", 0, 4, 0, 4), ("sh_type", 4, 4, 4, 4), ("sh_flags", 8, 4, 8, 8), ("sh_addr", 12, 4, 16, 8),
    ("sh_offset", 16, 4, 24, 8), ("sh_size", 20, 4, 32, 8), ("sh_link", 24, 4, 40, 4), ("sh_info", 28, 4, 44, 4),
    ("sh_addralign", 32, 4, 48, 8), ("sh_entsize", 36, 4, 56, 8),
)
_SYM = (
    ("st_name", 0, 4, 0, 4), ("st_value", 4, 4, 8, 8), ("st_size", 8, 4, 16, 8), ("st_info", 12, 1, 4, 1),
    ("st_other", 13, 1, 5, 1), ("st_shndx", 14, 2, 6, 2),
)
_REL = (("r_offset", 0, 4, 0, 8), ("r_info", 4, 4, 8, 8))
SHT_SYMTAB, SHT_REL = 2, 9


def _fields(table, base: int, is64: bool) -> list[Field]:
    return [(base + (o64 if is64 else o32), s64 if is64 else s32) for _, o32, s32, o64, s64 in table]


def field_map(data: bytes) -> list[Field]:
    """Every (offset, size) of a header field in a well-formed little-endian ELF:
    the ELF header, each program and section header, and the entries of its
    symbol tables and REL sections (the first 64 of each)."""
    is64 = data[4] == 2
    fields = _fields(_EHDR, 0, is64)
    ehdr = struct.Struct("<16xHHIQQQIHHHHHH" if is64 else "<16xHHIIIIIHHHHHH")
    _, _, _, _, phoff, shoff, _, _, phentsize, phnum, shentsize, shnum, _ = ehdr.unpack_from(data)
    for i in range(phnum):
        fields += _fields(_PHDR, phoff + i * phentsize, is64)
    shdr = struct.Struct("<IIQQQQIIQQ" if is64 else "<IIIIIIIIII")
    for i in range(shnum):
        base = shoff + i * shentsize
        fields += _fields(_SHDR, base, is64)
        _, sh_type, _, _, offset, size, _, _, _, entsize = shdr.unpack_from(data, base)
        table = {SHT_SYMTAB: _SYM, SHT_REL: _REL}.get(sh_type)
        if table and entsize:
            for n in range(min(size // entsize, 64)):
                fields += _fields(table, offset + n * entsize, is64)
    return fields
