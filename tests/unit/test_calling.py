"""kexec --call's result channel (kexec_py/calling.py): the call block the loader patches, the
result header it reads back, the placement rule for the result buffer, and the whole command
through the CLI with a fake kernel that plays the payload's part (writes a kit_result into the
pinned buffer at the pages the call block names)."""

import os
import struct
import subprocess

import pytest

from kexec_py import calling
from kexec_py.calling import (
    CALL_MAGIC, FAULT, MAX_PAGES, PARAMS_SIZE, RESULT_MAGIC, RETURNED, CallResult, PayloadFailed,
    buffer_conflict, call_block, encode_params, parse_result, patch_plan,
)
from kexec_py.errors import PlanError, UsageError
from kexec_py.segments import KexecPlan, Segment
import kexec_py
from unit_support import HOST_TREE, REPO, FakeKernel, FakeShim

HEADER = struct.Struct("<IIiIIIQQII")


def result(status=RETURNED, value=0, data=b"", length=None, vector=0, error=0, ip=0, cr2=0, room=4096):
    raw = HEADER.pack(RESULT_MAGIC, status, value, len(data) if length is None else length,
                      vector, error, ip, cr2, 1, 0) + data
    return raw.ljust(room, b"\0")


@pytest.mark.parametrize("params, encoded", [
    ([], b""),
    (["json=1"], b"json=1\0"),
    (["a=1", "b=x=y", "c="], b"a=1\0b=x=y\0c=\0"),
])
def test_params_are_nul_terminated_key_values(params, encoded):
    assert encode_params(params) == encoded


@pytest.mark.parametrize("params, message", [
    (["novalue"], "say KEY=VALUE"),
    (["=1"], "say KEY=VALUE"),
    (["a=\0"], "no NUL"),
    (["k=" + "x" * PARAMS_SIZE], f"the call block holds {PARAMS_SIZE}"),
])
def test_bad_params_are_refused_in_one_line(params, message):
    with pytest.raises(UsageError, match=message):
        encode_params(params)


def test_call_block_layout_is_kit_call():
    """struct kit_call: magic, 16 page addresses, params_size, reserved, 1024 bytes of params."""
    block = call_block([0x5000, 0x9000], b"json=1\0")
    assert len(block) == 16 + 8 * MAX_PAGES + 8 + PARAMS_SIZE
    assert block[:16] == CALL_MAGIC
    assert struct.unpack_from("<3Q", block, 16) == (0x5000, 0x9000, 0)
    assert struct.unpack_from("<I", block, 16 + 8 * MAX_PAGES) == (7,)
    assert block[152:159] == b"json=1\0"


def plan_with(buf, mem=0x1000000):
    return KexecPlan(mem, 0x2, (Segment(mem, 0x2000, buf, "payload"), Segment(0x3000000, 0x1000, b"", "backup")))


def test_patch_plan_writes_the_block_where_the_magic_is():
    image = b"\x90" * 100 + CALL_MAGIC + b"\0" * 2000 + b"tail"
    patched = patch_plan(plan_with(image), [0x7000], b"k=v\0")
    buf = patched.segments[0].buf
    assert len(buf) == len(image) and buf[:100] == image[:100] and buf.endswith(b"tail")
    assert buf[100:100 + len(call_block([0x7000], b"k=v\0"))] == call_block([0x7000], b"k=v\0")
    assert patched.segments[1:] == plan_with(image).segments[1:] and patched.entry == 0x1000000


def test_a_payload_without_a_call_block_runs_unpatched_but_takes_no_params():
    plan = plan_with(b"\x90" * 64)
    assert patch_plan(plan, [0x7000], b"") is plan
    with pytest.raises(UsageError, match="no call block"):
        patch_plan(plan, [0x7000], b"a=1\0")


@pytest.mark.parametrize("image, message", [
    (CALL_MAGIC + b"\0" * 2000 + CALL_MAGIC + b"\0" * 2000, "2 call blocks"),
    (b"\0" * 10 + CALL_MAGIC + b"\0" * 10, "runs past its segment's data"),
])
def test_damaged_call_blocks_are_refused(image, message):
    with pytest.raises(PlanError, match=message):
        patch_plan(plan_with(image), [0x7000], b"")


SEGMENTS = [Segment(0x1000000, 0x3000, b"x", "payload PT_LOAD[0]"), Segment(0x2000000, 0x100000, b"", "backup")]


@pytest.mark.parametrize("pages, bits, message", [
    ([0x7000, 0x5000000], 32, None),
    ([0x0FFF000], 32, None),                      # the page just below the image
    ([0x1003000], 64, None),                      # the page just past it
    ([0x7000, 0x1002000], 64, "page 0x1002000-0x1002fff lies in segment 0x1000000-0x1002fff (payload PT_LOAD[0])"),
    ([0x20FF000], 64, "lies in segment 0x2000000-0x20fffff (backup)"),
    ([0x100000000], 64, None),
    ([0x100000000], 32, "above 4 GiB"),
])
def test_result_pages_must_lie_outside_the_image_and_its_backup(pages, bits, message):
    why = buffer_conflict(pages, SEGMENTS, bits)
    assert (why is None) if message is None else (message in why), why


@pytest.mark.parametrize("raw, expected", [
    (b"\0" * 4096, CallResult()),                                          # reported nothing
    (result(data=b"hello\n"), CallResult(RETURNED, 0, b"hello\n")),
    (result(value=3, data=b"no E820"), CallResult(RETURNED, 3, b"no E820")),
    (result(data=b"x" * 10, length=5000, room=64), CallResult(RETURNED, 0, b"x" * 10 + b"\0" * 6, True)),
    (result(FAULT, vector=14, error=2, ip=0x1000123, cr2=0x7f0000000000),
     CallResult(FAULT, 0, b"", False, 14, 2, 0x1000123, 0x7f0000000000)),
])
def test_parse_result(raw, expected):
    assert parse_result(raw) == expected


@pytest.mark.parametrize("res, message", [
    (CallResult(FAULT, vector=0, ip=0x1000040),
     "p: the payload took exception 0 (#DE divide error) at 0x1000040; it was abandoned and Linux resumed"),
    (CallResult(FAULT, vector=14, error=2, ip=0x10, cr2=0x7f0000000000),
     "exception 14 (#PF page fault) at 0x10, error 0x2, address 0x7f0000000000;"),
    (CallResult(FAULT, vector=13, error=0x80, ip=0x10), "exception 13 (#GP general protection) at 0x10, error 0x80;"),
    (CallResult(RETURNED, 1, b"int 15h E820h is not supported"), "p: the payload failed (1): int 15h E820h is not supported"),
    (CallResult(RETURNED, -2), "p: the payload failed (-2)"),
])
def test_failures_are_one_line(res, message):
    with pytest.raises(PayloadFailed) as e:
        res.check("p")
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("res", [CallResult(), CallResult(RETURNED, 0, b"ok\n")])
def test_success_returns_the_data(res):
    assert res.check("p") == res.data


# --- the whole command, in this process --------------------------------------------------------

root = pytest.mark.skipif(os.geteuid() != 0, reason="/proc/self/pagemap gives page frames to root only")


class PayloadKernel(FakeKernel):
    """A kernel whose jump 'runs' the payload: it finds the result pages in the loaded call
    block and writes `answer` where they lie, which it can because they are this process's
    own buffer (`buffer`), page for page."""

    def __init__(self, buffer, answer, **kw):
        super().__init__(**kw)
        self.buffer, self.answer = buffer, answer

    def reboot_kexec(self):
        super().reboot_kexec()
        (seg,) = [s for s in self.plans[-1].segments if CALL_MAGIC in bytes(s.buf)]
        block = bytes(seg.buf)[bytes(seg.buf).index(CALL_MAGIC):]
        pages = [p for p in struct.unpack_from(f"<{MAX_PAGES}Q", block, 16) if p]
        assert pages == self.buffer.pages()
        self.params = block[152:152 + struct.unpack_from("<I", block, 16 + 8 * MAX_PAGES)[0]]
        self.buffer._map[:len(self.answer)] = self.answer


@pytest.fixture(scope="module")
def kit_payload(tmp_path_factory):
    """The cpuid example, built with the kit: a real call block to patch (x86_64: this
    machine's pages may lie above 4 GiB, out of an i386 payload's reach)."""
    out = tmp_path_factory.mktemp("call") / "cpuid"
    done = subprocess.run(["make", "-s", "-C", os.path.join(REPO, "csrc"), f"PAYLOAD={REPO}/csrc/examples/cpuid.c",
                           f"OUT={out}", "ARCH=x86_64"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return str(out)


@root
def test_call_loads_jumps_reads_and_unloads(run_cli, kit_payload, monkeypatch):
    buffer = calling.ResultBuffer()
    monkeypatch.setattr(calling, "ResultBuffer", lambda: buffer)
    kernel = PayloadKernel(buffer, result(data=b'{"vendor": "GenuineIntel"}\n'))
    out = run_cli(["--arch", "x86_64", "--machine-root", HOST_TREE, "-x", "-y", "--call", kit_payload,
                   "--param", "a=1", "--json"], kernel)
    assert (out.code, out.out, out.err) == (0, '{"vendor": "GenuineIntel"}\n', "")
    assert kernel.calls == ["kexec_loaded", "kexec_load", "kexec_loaded", "reboot_kexec", "kexec_unload"]
    assert kernel.params == b"a=1\0json=1\0" and not kernel.loaded


@root
def test_a_fault_exits_255_with_one_line_and_unloads(run_cli, kit_payload, monkeypatch):
    buffer = calling.ResultBuffer()
    monkeypatch.setattr(calling, "ResultBuffer", lambda: buffer)
    kernel = PayloadKernel(buffer, result(FAULT, vector=6, ip=0x1000200))
    out = run_cli(["--arch", "x86_64", "--machine-root", HOST_TREE, "-x", "-y", "--call", kit_payload], kernel)
    assert (out.code, out.out) == (255, "")
    assert out.err == (f"kexec: {kit_payload}: the payload took exception 6 (#UD invalid opcode) at 0x1000200;"
                       " it was abandoned and Linux resumed\n")
    assert not kernel.loaded


@pytest.mark.parametrize("argv, message", [
    (["--call", "IMG"], "an image is already loaded; --call loads its own and would replace it (kexec -u unloads it)"),
    (["--call", "--dry-run", "IMG"], "--dry-run does not apply to --call (it plans nothing: it runs the payload)"),
    (["--param", "a=1", "-l", "--args-none", "IMG"], "--param goes with --call"),
    (["--call"], "--call needs a payload"),
])
def test_call_refusals_leave_the_loaded_image_alone(run_cli, tiny_elf32, argv, message):
    kernel = FakeKernel(loaded=True)
    out = run_cli(["--arch", "i386", "--machine-root", HOST_TREE] + [tiny_elf32 if a == "IMG" else a for a in argv],
                  kernel)
    assert out.code in (1, 255) and out.out == ""
    assert out.err == f"kexec: {message}\n"
    assert kernel.loaded and "kexec_load" not in kernel.calls and "kexec_unload" not in kernel.calls


@root
def test_the_api_refuses_a_buffer_of_the_callers_on_the_image(kit_payload, tmp_path, monkeypatch):
    """kexec_py.call(..., buffer=): the payload moved onto the buffer's first page is refused
    before anything is loaded, planned for this machine (an x86_64 host: its memory map)."""
    buffer = calling.ResultBuffer()
    page = buffer.pages()[0]
    elf = bytearray(open(kit_payload, "rb").read())
    phoff = struct.unpack_from("<Q", elf, 0x20)[0]
    struct.pack_into("<Q", elf, 0x18, page)
    struct.pack_into("<QQ", elf, phoff + 16, page, page)
    moved = tmp_path / "moved"
    moved.write_bytes(elf)
    monkeypatch.setattr("kexec_py.cli._linux_kernel", lambda args: FakeKernel())
    monkeypatch.setattr("kexec_py.cli._shim_kernel", lambda args: FakeShim())
    with pytest.raises(PlanError, match=rf"the result buffer's page {page:#x}-.* lies in segment {page:#x}-"):
        kexec_py.call(str(moved), buffer=buffer, mem_min=page, mem_max=page + 0xFFFFF)
