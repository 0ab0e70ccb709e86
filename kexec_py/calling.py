"""kexec --call: load a payload, jump to it once, read its answer, unload it.

The result channel (csrc/include/kit/call.h): this process pins a result
buffer in its own memory (mmap + mlock), learns the physical address of each
of its pages from /proc/self/pagemap (root only), and writes them with the
--param values into the payload's call block, found by its magic in the
image, before the load. The kernel swaps only the image's own pages (its
segments, with any backup window) around the jump, so a buffer outside all
of them is never moved or copied: what the payload writes there is in this
process's memory when the jump returns. Load, jump, read and unload happen
in this one process; the page addresses are read again after the jump, and
a page the kernel moved meanwhile (compaction) fails the call rather than
returning what lies there now.

The call block, the result header and the placement rule are pure functions of bytes and
plans (tests/unit/test_calling.py); ResultBuffer, pin_outside, run and call touch the system.
"""

from __future__ import annotations

import errno
import mmap
import os
import struct
from collections.abc import Mapping, Sequence

from kexec_py.errors import KexecError, PlanError, UsageError
from kexec_py.ranges import PAGE_SIZE, Range
from kexec_py.segments import KexecPlan, Segment
from kexec_py.value import frozen, replace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from kexec_py import cli
    from kexec_py.options import Args

CALL_MAGIC = b"kexec-py call v1"
MAX_PAGES = 16
PARAMS_SIZE = 1024
# struct kit_call: magic, result_pages[16], params_size, reserved, params
_CALL_HEADER = struct.Struct(f"<16s{MAX_PAGES}QII")
RESULT_MAGIC = 0x5345524B  # "KRES"
# struct kit_result: magic, status, value, length, vector, error, ip, cr2, call, reserved
_RESULT = struct.Struct("<IIiIIIQQII")
RETURNED, FAULT = 1, 2
# Pages this many times in a row over the image before the call gives up.
PIN_ATTEMPTS = 8
FOUR_GIB = 1 << 32

EXCEPTIONS = (
    "#DE divide error", "#DB debug", "NMI", "#BP breakpoint", "#OF overflow", "#BR bound range",
    "#UD invalid opcode", "#NM device not available", "#DF double fault",
    "coprocessor segment overrun", "#TS invalid TSS", "#NP segment not present", "#SS stack fault",
    "#GP general protection", "#PF page fault", "reserved", "#MF x87 error", "#AC alignment check",
    "#MC machine check", "#XM SIMD error", "#VE virtualization", "#CP control protection",
)


class PayloadFailed(KexecError):
    """The payload ran and came back, but with a fault or a non-zero return value."""


@frozen
class CallResult:
    """What the payload reported; status 0: nothing (not a kit payload, or it never returned
    through the kit)."""

    status: int = 0
    value: int = 0
    data: bytes = b""
    truncated: bool = False
    vector: int = 0
    error: int = 0
    ip: int = 0
    cr2: int = 0

    def check(self, payload: str) -> bytes:
        """The data, or PayloadFailed in one line for a fault or a non-zero return."""
        if self.status == FAULT:
            name = EXCEPTIONS[self.vector] if self.vector < len(EXCEPTIONS) else "reserved"
            detail = f", error {self.error:#x}" if self.error else ""
            if self.vector == 14:
                detail += f", address {self.cr2:#x}"
            raise PayloadFailed(f"{payload}: the payload took exception {self.vector} ({name}) at"
                                f" {self.ip:#x}{detail}; it was abandoned and Linux resumed")
        if self.status == RETURNED and self.value != 0:
            reason = self.data.decode(errors="replace").strip().splitlines()
            raise PayloadFailed(f"{payload}: the payload failed ({self.value})"
                                + (f": {reason[0]}" if reason else ""))
        return self.data


def encode_params(params: Sequence[str]) -> bytes:
    """'key=value' strings as the call block holds them: each NUL-terminated."""
    encoded = b""
    for p in params:
        key, sep, _ = p.partition("=")
        if not sep or not key:
            raise UsageError(f"--param {p!r}: say KEY=VALUE")
        if "\0" in p:
            raise UsageError(f"--param {p!r}: no NUL bytes")
        encoded += p.encode() + b"\0"
    if len(encoded) > PARAMS_SIZE:
        raise UsageError(f"--param: {len(encoded)} bytes of parameters, the call block holds {PARAMS_SIZE}")
    return encoded


def call_block(pages: Sequence[int], params: bytes) -> bytes:
    return _CALL_HEADER.pack(CALL_MAGIC, *pages, *[0] * (MAX_PAGES - len(pages)), len(params), 0) \
        + params.ljust(PARAMS_SIZE, b"\0")


def find_call_block(plan: KexecPlan) -> tuple[int, int] | None:
    """(segment index, offset) of the call block's magic; None if the image has none."""
    found = [(i, off) for i, s in enumerate(plan.segments)
             for off in _occurrences(bytes(s.buf), CALL_MAGIC)]
    if len(found) > 1:
        raise PlanError(f"the image holds {len(found)} call blocks ({CALL_MAGIC.decode()!r}); it needs one")
    return found[0] if found else None


def _occurrences(data: bytes, needle: bytes) -> list[int]:
    out, at = [], data.find(needle)
    while at >= 0:
        out.append(at)
        at = data.find(needle, at + 1)
    return out


def patch_plan(plan: KexecPlan, pages: Sequence[int], params: bytes) -> KexecPlan:
    """The plan with the result pages and parameters in the payload's call block."""
    where = find_call_block(plan)
    if where is None:
        if params:
            raise UsageError("--param: the payload has no call block (not built with the kexec-py kit)")
        return plan
    index, offset = where
    segment = plan.segments[index]
    block = call_block(pages, params)
    if offset + len(block) > segment.bufsz:
        raise PlanError(f"the call block at {segment.mem + offset:#x} runs past its segment's data")
    buf = bytearray(segment.buf)
    buf[offset:offset + len(block)] = block
    segments = list(plan.segments)
    segments[index] = replace(segment, buf=bytes(buf))
    return replace(plan, segments=tuple(segments))


def buffer_conflict(pages: Sequence[int], segments: Sequence[Segment], address_bits: int) -> str | None:
    """Why these result pages cannot take the payload's answer, or None: a page where the
    image or its backup lies would be swapped away with it; a page the payload cannot
    address (an i386 payload runs with paging off, below 4 GiB)."""
    for page in pages:
        r = Range.sized(page, PAGE_SIZE)
        for s in segments:
            if s.memsz and r.overlaps(s.range):
                return (f"the result buffer's page {r} lies in segment {s.range} ({s.source}),"
                        " which the kernel swaps out with the image")
        if address_bits == 32 and r.end > FOUR_GIB:
            return f"the result buffer's page {r} lies above 4 GiB, out of an i386 payload's reach"
    return None


def parse_result(raw: bytes) -> CallResult:
    """The header and data the payload left in the result buffer (all zero: nothing)."""
    magic, status, value, length, vector, error, ip, cr2, _call, _ = _RESULT.unpack_from(raw)
    if magic != RESULT_MAGIC:
        return CallResult()
    room = len(raw) - _RESULT.size
    data = raw[_RESULT.size:_RESULT.size + min(length, room)]
    return CallResult(status, value, data, length > room, vector, error, ip, cr2)


def _pagemap_pfns(address: int, count: int) -> list[int]:
    with open("/proc/self/pagemap", "rb") as f:
        f.seek(address // PAGE_SIZE * 8)
        entries = struct.unpack(f"<{count}Q", f.read(8 * count))
    pfns = []
    for e in entries:
        pfn = e & ((1 << 55) - 1)
        if not e >> 63 or not pfn:
            raise KexecError("cannot learn the result buffer's physical addresses from"
                             " /proc/self/pagemap (kexec --call needs root)")
        pfns.append(pfn)
    return pfns


class ResultBuffer:
    """Locked anonymous pages of this process, and their physical addresses."""

    def __init__(self, pages: int = MAX_PAGES) -> None:
        from kexec_py.kernel import libc

        self.size = pages * PAGE_SIZE
        self._map = mmap.mmap(-1, self.size, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        ffi, lib = libc()
        self._ptr = ffi.from_buffer(self._map)
        self.address = int(ffi.cast("uintptr_t", self._ptr))
        ffi.errno = 0
        number = {4: 150, 8: 149}[struct.calcsize("P")]  # mlock, by the process's ABI
        if lib.syscall(ffi.cast("long", number), self._ptr, ffi.cast("size_t", self.size)) != 0:
            raise KexecError(f"cannot lock the result buffer in memory: {os.strerror(ffi.errno or errno.EPERM)}")
        self._map.write(b"\0" * self.size)  # every page present and this process's own

    def pages(self) -> list[int]:
        return [pfn * PAGE_SIZE for pfn in _pagemap_pfns(self.address, self.size // PAGE_SIZE)]

    def read(self) -> bytes:
        return bytes(self._map)


def pin_outside(segments: Sequence[Segment], address_bits: int,
                buffer: ResultBuffer | None = None) -> tuple[ResultBuffer, list[int]]:
    """A result buffer none of whose pages conflict (buffer_conflict). A buffer the caller
    chose is refused in one line; one of ours is traded for another a few times (each held
    until the end, so the kernel cannot hand back the same pages)."""
    held = []
    for _ in range(1 if buffer else PIN_ATTEMPTS):
        candidate = buffer or ResultBuffer()
        held.append(candidate)
        pages = candidate.pages()
        why = buffer_conflict(pages, segments, address_bits)
        if why is None:
            return candidate, pages
    raise PlanError(why if buffer else f"no place for the result buffer in {PIN_ATTEMPTS} tries; the last: {why}")


def run(args: Args, backends: cli._Backends, buffer: ResultBuffer | None = None) -> CallResult:
    """kexec --call: refuse if an image is loaded, then load, jump, read and unload."""
    from kexec_py import cli

    if args.dry_run:
        raise UsageError("--dry-run does not apply to --call (it plans nothing: it runs the payload)")
    if not args.image:
        raise UsageError("--call needs a payload")
    params = encode_params(list(args.params or ()) + (["json=1"] if args.json else []))
    if backends.shim_loaded() or cli._loaded(backends.kernel):
        raise KexecError("an image is already loaded; --call loads its own and would replace it"
                         " (kexec -u unloads it)")
    if args.args_style is None:
        args.args_style = "none"
    plan = cli._plan_load(args, preserve_context=True)
    route = cli._route(args, True, backends)
    arch = cli._target_arch(args)
    buffer, pages = pin_outside(plan.segments, arch.address_bits, buffer)
    target = cli._load(args, patch_plan(plan, pages, params), route, backends)
    try:
        cli._exec(args, backends)
    finally:
        target.kexec_unload(arch.kexec_arch)
    if buffer.pages() != pages:
        raise KexecError("the result buffer moved in physical memory during the call; its answer is lost")
    return parse_result(buffer.read())


def call(payload: str, params: Mapping[str, str] | None = None, *, json: bool = False,
         mem_min: int | None = None, mem_max: int | None = None, backend: str = "auto",
         no_ifdown: bool = False, buffer: ResultBuffer | None = None) -> bytes:
    """Run payload once in physical mode (as `kexec --call`) and return what it reported.
    Raises KexecError (PayloadFailed for a fault or a non-zero return) with one line."""
    from kexec_py import cli
    from kexec_py.options import parse

    argv = ["--call", payload, "--backend", backend]
    argv += [f"--param={k}={v}" for k, v in (params or {}).items()]
    argv += ["--json"] * json + ["--no-ifdown"] * no_ifdown
    for option, value in (("--mem-min", mem_min), ("--mem-max", mem_max)):
        if value is not None:
            argv.append(f"{option}={value:#x}")
    args = parse(argv)
    backends = cli._Backends(args, cli._linux_kernel, cli._shim_kernel)
    return run(args, backends, buffer).check(payload)
