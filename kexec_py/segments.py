"""What kexec_load receives: segments, the flags (include/uapi/linux/kexec.h) and the
plan that holds them."""

from __future__ import annotations

from kexec_py.arch import KEXEC_ARCH_MASK, arch_of_kexec_flags
from kexec_py.ranges import Range
from kexec_py.value import field, frozen

TYPE_CHECKING = False  # annotations only: importing typing would cost a payload load
if TYPE_CHECKING:
    from typing import Union

    Buffer = Union[bytes, bytearray, memoryview]


class KexecFlags:
    """The flag bits, as plain ints: an enum.IntFlag class takes longer to define than
    this whole module takes to import, on every load."""

    ON_CRASH = 0x1
    PRESERVE_CONTEXT = 0x2


_NAMES = ((KexecFlags.ON_CRASH, "KEXEC_ON_CRASH"), (KexecFlags.PRESERVE_CONTEXT, "KEXEC_PRESERVE_CONTEXT"))


def describe_flags(flags: int) -> str:
    """e.g. 'KEXEC_PRESERVE_CONTEXT|KEXEC_ARCH_386'."""
    names = [name for bit, name in _NAMES if flags & bit]
    arch = arch_of_kexec_flags(flags)
    names.append(arch.kexec_arch_name if arch else f"KEXEC_ARCH({(flags & KEXEC_ARCH_MASK) >> 16})")
    return "|".join(names)


@frozen
class Segment:
    """memsz bytes at physical address mem; the first len(buf) come from buf,
    the kernel zero-fills the rest."""

    mem: int
    memsz: int
    buf: Buffer = field(default=b"", repr=False, compare=False)
    source: str = ""

    @property
    def bufsz(self) -> int:
        return len(self.buf)

    @property
    def range(self) -> Range:
        return Range.sized(self.mem, self.memsz)


@frozen
class LoadedImage:
    """What an image loader produces: the image's own segments and where to enter."""

    entry: int
    segments: tuple[Segment, ...]
    # For a preserve-context load: the address ranges whose RAM is backed up around
    # every jump (scratch memory for the image); None: only the image's own pages.
    backup_window: tuple[Range, ...] | None = None
    notes: tuple[str, ...] = ()  # why the layout is what it is, for --debug and --dry-run


@frozen
class KexecPlan:
    """Exactly the arguments of one kexec_load call."""

    entry: int
    flags: int
    segments: tuple[Segment, ...]
    notes: tuple[str, ...] = ()  # not passed to the kernel: explanations for people

    def as_dict(self) -> dict[str, object]:
        plan: dict[str, object] = {
            "entry": self.entry,
            "flags": self.flags,
            "segments": [
                {"mem": s.mem, "memsz": s.memsz, "bufsz": s.bufsz, "source": s.source}
                for s in self.segments
            ],
        }
        if self.notes:
            plan["notes"] = list(self.notes)
        return plan

    def describe(self, backend: str = "") -> str:
        """Human-readable, in the shape of kexec-tools' --debug segment list; the
        backend line (which kernel interface takes it) before the notes."""
        lines = [
            f"entry       = {self.entry:#x}",
            f"flags       = {self.flags:#x} ({describe_flags(self.flags)})",
            f"nr_segments = {len(self.segments)}",
        ]
        for i, s in enumerate(self.segments):
            lines.append(
                f"segment[{i}]: mem={s.mem:#010x} memsz={s.memsz:#x} bufsz={s.bufsz:#x}"
                f"  ({s.range if s.memsz else 'empty'})  {s.source}"
            )
        if backend:
            lines.append(backend)
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)
