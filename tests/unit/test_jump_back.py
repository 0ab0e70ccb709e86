"""--load-jump-back-helper: the way back from a kernel a preserve-context kexec started."""

import json

import pytest

from kexec_py.arch import I386, X86_64
from kexec_py.bootparams import JUMP_BACK_PAGE, SETUP_JUMP_BACK_PAGE
from kexec_py.jump_back import (NothingToJumpBack, empty_segment, entry_from_cmdline, jump_back_plan,
                                read_jump_back_page)
from kexec_py.segments import KexecPlan, Segment
from unit_support import HOST_TREE, FakeKernel, FakeShim, write_tree


@pytest.mark.parametrize(
    "cmdline, entry",
    [
        ("console=ttyS0 kexec_jump_back_entry=0x0009f123", 0x9F123),  # purgatory's spelling
        ("kexec_jump_back_entry=0x0009f123", 0x9F123),
        ("kexec_jump_back_entry=0X1234ABCD quiet", 0x1234ABCD),
        ("kexec_jump_back_entry=654321", 654321),
        # a reused command line may carry a stale one: purgatory appends, the last one counts
        ("kexec_jump_back_entry=0x1000 root=/dev/vda kexec_jump_back_entry=0x2000", 0x2000),
    ],
)
def test_entry_from_cmdline(cmdline, entry):
    assert entry_from_cmdline(cmdline) == entry


@pytest.mark.parametrize(
    "cmdline, message",
    [
        ("console=ttyS0 quiet", "nothing to jump back to: /proc/cmdline has no kexec_jump_back_entry="),
        ("", "nothing to jump back to: /proc/cmdline has no kexec_jump_back_entry="),
        ("xkexec_jump_back_entry=0x1000", "has no kexec_jump_back_entry="),  # another parameter's name
        ("kexec_jump_back_entry=", "has kexec_jump_back_entry='', not an address"),
        ("kexec_jump_back_entry=0xzz", "has kexec_jump_back_entry='0xzz', not an address"),
        ("kexec_jump_back_entry=0x00000000", "kexec_jump_back_entry=0x00000000 is 0"),
    ],
)
def test_nothing_to_jump_back_to(cmdline, message):
    with pytest.raises(NothingToJumpBack, match="^nothing to jump back to: ") as refused:
        entry_from_cmdline(cmdline)
    assert message in str(refused.value)


@pytest.mark.parametrize("arch, flags, mem", [(I386, 0x30002, 0xFFFFF000), (X86_64, 0x3E0002, 0x3FFFFFFFF000)])
def test_jump_back_plan(arch, flags, mem):
    plan = jump_back_plan(0x9F123, arch, "--entry")
    assert (plan.entry, plan.flags) == (0x9F123, flags)  # KEXEC_PRESERVE_CONTEXT | the kernel's arch
    # one segment that describes nothing: nr_segments 0 would unload instead; at the top of
    # the destination range, where even Linux 6.12's mem + memsz - 1 claims no page
    assert plan.segments == (empty_segment(arch),)
    (segment,) = plan.segments
    assert (segment.mem, segment.memsz, segment.bufsz) == (mem, 0, 0)
    assert plan.as_dict()["segments"] == [{"mem": mem, "memsz": 0, "bufsz": 0, "source": segment.source}]


# --- the command line -----------------------------------------------------------------------------

@pytest.fixture
def second_kernel(tmp_path):
    """A machine tree as the second kernel sees it: purgatory's note on /proc/cmdline."""

    def make(cmdline="console=ttyS0 kexec_jump_back_entry=0x0009f123"):
        root = write_tree(tmp_path / "second", sysfs=[(0, 0x9FBFF, "System RAM")], meminfo_kb=65536)
        (tmp_path / "second" / "proc" / "cmdline").write_text(cmdline + "\n")
        return root

    return make


def test_cli_loads_the_helper(run_cli, second_kernel):
    kernel = FakeKernel()
    result = run_cli(["--arch", "i386", "--machine-root", second_kernel(), "--load-jump-back-helper"], kernel)
    assert (result.code, result.out, result.err) == (0, "", "")
    assert kernel.calls == ["kexec_load"]
    (plan,) = kernel.plans
    assert (plan.entry, plan.flags, plan.segments) == (0x9F123, 0x30002, (empty_segment(I386),))


def test_cli_entry_wins_over_proc_cmdline(run_cli, second_kernel):
    kernel = FakeKernel()
    result = run_cli(["--arch", "i386", "--machine-root", second_kernel(), "--load-jump-back-helper",
                      "--entry=0x12345"], kernel)
    assert result.code == 0, result.err
    assert kernel.plans[0].entry == 0x12345


def test_cli_entry_without_proc_cmdline(run_cli, tmp_path):
    """--entry needs nothing from the machine (no memory map, no /proc/cmdline)."""
    kernel = FakeKernel()
    result = run_cli(["--arch", "x86_64", "--machine-root", tmp_path, "--load-jump-back-helper",
                      "--entry", "0x7f000"], kernel)
    assert result.code == 0, result.err
    assert (kernel.plans[0].entry, kernel.plans[0].flags) == (0x7F000, 0x3E0002)


def test_cli_dry_run_json(run_cli, second_kernel):
    result = run_cli(["--arch", "i386", "--machine-root", second_kernel(), "--load-jump-back-helper",
                      "--dry-run", "--json"])
    assert (result.code, result.err) == (0, "")
    plan = json.loads(result.out)
    assert {k: plan[k] for k in ("entry", "flags", "segments")} == {
        "entry": 0x9F123,
        "flags": 0x30002,
        "segments": [{"mem": 0xFFFFF000, "memsz": 0, "bufsz": 0, "source": empty_segment(I386).source}],
    }
    assert "returns to 0x9f123" in plan["notes"][0]


def test_cli_dry_run_text(run_cli, second_kernel):
    result = run_cli(["--arch", "i386", "--machine-root", second_kernel(), "--load-jump-back-helper",
                      "--dry-run"])
    assert result.code == 0
    assert result.out.splitlines()[:4] == [
        "entry       = 0x9f123",
        "flags       = 0x30002 (KEXEC_PRESERVE_CONTEXT|KEXEC_ARCH_386)",
        "nr_segments = 1",
        f"segment[0]: mem=0xfffff000 memsz=0x0 bufsz=0x0  (empty)  {empty_segment(I386).source}",
    ]


BAD = [
    # id, argv after --load-jump-back-helper, /proc/cmdline, exit code, message
    ("nothing-to-jump-back-to", [], "console=ttyS0 quiet", 255,
     "kexec: nothing to jump back to: {root}/proc/cmdline has no kexec_jump_back_entry= (this kernel was"
     " not started by a preserve-context kexec; --entry=ADDR names the return address)\n"),
    ("entry-zero", ["--entry", "0"], None, 255, "kexec: nothing to jump back to: --entry is 0\n"),
    ("with-image", ["IMG"], None, 1, "kexec: --load-jump-back-helper takes no image\n"),
    ("with-initrd", ["--initrd", "/x"], None, 1, "kexec: --load-jump-back-helper loads no image: --initrd does not apply\n"),
    ("with-window", ["--mem-max", "0x1000000"], None, 1, "--mem-min/--mem-max does not apply"),
    ("with-type", ["-t", "bzImage"], None, 1, "a type does not apply"),
    ("two-actions", ["-l"], None, 1, "not allowed with argument"),
]


@pytest.mark.parametrize("argv, cmdline, code, message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_cli_refusals_load_nothing(run_cli, second_kernel, argv, cmdline, code, message):
    root = second_kernel(cmdline or "console=ttyS0 kexec_jump_back_entry=0x9f000")
    previous = KexecPlan(0x2000000, 0x30002, (Segment(0x2000000, 0x1000, b"old", "old"),))
    kernel = FakeKernel(loaded=True, plans=[previous])
    result = run_cli(["--arch", "i386", "--machine-root", root, "--load-jump-back-helper",
                      *[HOST_TREE if a == "IMG" else a for a in argv]], kernel)
    assert result.code == code
    assert result.out == "" and result.err.count("\n") == 1
    assert message.format(root=root) in result.err
    assert kernel.calls == [] and kernel.plans == [previous]


# --- x86_64: the re-entry page, as purgatory saved it ---------------------------------------------

PAGE = bytes(range(256)) * 16


def write_setup_data(root, nodes):
    """/sys/kernel/boot_params/setup_data/<n>/{type,data} as x86 ksysfs shows them."""
    for index, (kind, data) in enumerate(nodes):
        node = root / "sys" / "kernel" / "boot_params" / "setup_data" / str(index)
        node.mkdir(parents=True)
        (node / "type").write_text(f"{kind:#x}\n")
        (node / "data").write_bytes(data)
    return str(root)


@pytest.mark.parametrize(
    "nodes, found",
    [
        ([], None),
        ([(1, b"\0" * 20), (SETUP_JUMP_BACK_PAGE, JUMP_BACK_PAGE.pack(0xE800000, PAGE))], (0xE800000, PAGE)),
        ([(SETUP_JUMP_BACK_PAGE, b"short")], None),  # not one: no copy
        ([(9, JUMP_BACK_PAGE.pack(0xE800000, PAGE))], None),  # another type
    ],
    ids=["none", "after-e820-ext", "short", "other-type"],
)
def test_read_jump_back_page(tmp_path, nodes, found):
    assert read_jump_back_page(write_setup_data(tmp_path, nodes)) == found


@pytest.mark.parametrize(
    "arch, saved, entry_mapped, segment, note",
    [
        (X86_64, (0xE800000, PAGE), False, (0xE800000, 0x1000, PAGE), None),
        (X86_64, (0xE801000, PAGE), False, (0x3FFFFFFFF000, 0, b""), "no copy of the page at 0xe800000"),
        (X86_64, None, False, (0x3FFFFFFFF000, 0, b""), "no copy of the page at 0xe800000"),
        (X86_64, (0xE800000, PAGE), True, (0x3FFFFFFFF000, 0, b""), None),  # the shim maps the entry
        (I386, (0xE800000, PAGE), False, (0xFFFFF000, 0, b""), None),  # paging is off: nothing to map
    ],
    ids=["x86_64-saved", "x86_64-other-page", "x86_64-none", "x86_64-entry-mapped", "i386"],
)
def test_jump_back_plan_maps_the_re_entry_page(arch, saved, entry_mapped, segment, note):
    plan = jump_back_plan(0xE8000F2, arch, "--entry", saved, entry_mapped)
    (s,) = plan.segments
    assert (s.mem, s.memsz, bytes(s.buf)) == segment
    assert (note in plan.notes[-1]) if note else len(plan.notes) == 1


def test_cli_loads_the_saved_page_on_x86_64(run_cli, tmp_path):
    root = write_setup_data(tmp_path, [(SETUP_JUMP_BACK_PAGE, JUMP_BACK_PAGE.pack(0xE800000, PAGE))])
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "cmdline").write_text("console=ttyS0 kexec_jump_back_entry=0x000000000e8000f2\n")
    kernel = FakeKernel()
    result = run_cli(["--arch", "x86_64", "--machine-root", root, "--load-jump-back-helper"], kernel)
    assert result.code == 0, result.err
    (plan,) = kernel.plans
    assert [(s.mem, s.memsz, bytes(s.buf)) for s in plan.segments] == [(0xE800000, 0x1000, PAGE)]


@pytest.mark.parametrize("backend, segments", [
    ("kernel", [(0xE800000, 0x1000, PAGE)]),
    ("shim", [(0x3FFFFFFFF000, 0, b"")]),  # the module maps the entry; the page is not its RAM
])
def test_cli_helper_segment_follows_the_backend(run_cli, tmp_path, backend, segments):
    root = write_setup_data(tmp_path, [(SETUP_JUMP_BACK_PAGE, JUMP_BACK_PAGE.pack(0xE800000, PAGE))])
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "cmdline").write_text("console=ttyS0 kexec_jump_back_entry=0x000000000e8000f2\n")
    kernel, shim = FakeKernel(), FakeShim(present_=True)
    result = run_cli(["--arch", "x86_64", "--machine-root", root, "--backend", backend,
                      "--load-jump-back-helper"], kernel, shim)
    assert result.code == 0, result.err
    (plan,) = (shim if backend == "shim" else kernel).plans
    assert [(s.mem, s.memsz, bytes(s.buf)) for s in plan.segments] == segments
