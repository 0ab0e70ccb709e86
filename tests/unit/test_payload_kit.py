"""The csrc/ payload kit's output, as kexec-py sees it: i386 and x86_64 physical-mode ELF
payloads (ELF32/EM_386 and ELF64/EM_X86_64, ET_EXEC, page-aligned PT_LOADs at PHYS_ADDR,
entry _start), built with make into a temporary directory, then planned with --dry-run
(x86_64: for the recorded x86_64 guest)."""

import json
import os
import subprocess

import pytest
from elftools.elf.elffile import ELFFile

from kexec_py.ranges import PAGE_SIZE, align_up
from unit_support import HOST_TREE, REPO, recorded_tree

KIT = os.path.join(REPO, "csrc")
EXAMPLES = ["phy_mode", "entry_report", "bios-e820", "bios-memsize", "cpuid", "edd", "vbe-info"]
ARCHES = ["i386", "x86_64"]
DEFAULT_PHYS_ADDR = 0x01000000
# arch -> (ELF class, machine, kexec_load flags of a preserve-context load, the other arch)
ELF_FACTS = {
    "i386": ("ELFCLASS32", "EM_386", 0x30002, "x86_64"),
    "x86_64": ("ELFCLASS64", "EM_X86_64", 0x3E0002, "i386"),
}
# where each arch's example is planned: this host's recorded map, the x86_64 guest's
MACHINES = {"i386": HOST_TREE, "x86_64": "qemu-x86_64-512M"}


def machine_root(arch):
    return HOST_TREE if MACHINES[arch] == HOST_TREE else recorded_tree(MACHINES[arch])


def make(*args):
    if not os.path.exists(os.path.join(KIT, "Makefile")):
        pytest.fail(f"{KIT}/Makefile is missing: the payload kit cannot be built")
    return subprocess.run(["make", "-s", "-C", KIT, *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="session")
def kit_dir(tmp_path_factory):
    """`make -C csrc O=DIR`: the examples in DIR/i386/ and DIR/x86_64/."""
    out = tmp_path_factory.mktemp("kit")
    result = make(f"O={out}")
    assert result.returncode == 0, f"make -C csrc O={out} failed:\n{result.stderr}"
    return out


@pytest.fixture(scope="session")
def user_payload(tmp_path_factory):
    """A payload of a user's own: one C file, linked at a custom PHYS_ADDR."""
    directory = tmp_path_factory.mktemp("user")
    source = directory / "hello.c"
    source.write_text(
        "#include <kit/kit.h>\n"
        "static char scratch[0x5000];\n"
        "static const char marker[] = \"user-payload-marker\";\n"
        "int payload_main(const struct kit_entry_state *entry)\n"
        "{\n"
        "\tscratch[entry->eax & 0xfff] = 1;\n"
        "\tkit_puts(marker);\n"
        "\treturn scratch[0];\n"
        "}\n"
    )
    out = directory / "hello"
    result = make(f"PAYLOAD={source}", f"OUT={out}", "PHYS_ADDR=0x2400000")
    assert result.returncode == 0, f"building {source} with the kit failed:\n{result.stderr}"
    return str(out)


def elf_facts(path):
    """(header, PT_LOAD headers, _start, file bytes) by pyelftools."""
    with open(path, "rb") as f:
        raw = f.read()
        f.seek(0)
        elf = ELFFile(f)
        loads = [s.header for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
        symtab = elf.get_section_by_name(".symtab")
        assert symtab is not None, f"{path} has no symbol table"
        [start] = symtab.get_symbol_by_name("_start")
        symbols = {s.name: s["st_value"] for s in symtab.iter_symbols()}
        return elf.header, loads, start["st_value"], symbols, raw


def dry_run(path, machine_root=HOST_TREE, arch="i386"):
    from kexec_py.cli import main

    return main(["--dry-run", "--json", "--arch", arch, "--machine-root", machine_root,
                 "--load-preserve-context", "--args-none", path])


def expected_segments(path, loads):
    return [
        {"mem": p.p_paddr, "memsz": align_up(p.p_memsz), "bufsz": p.p_filesz,
         "source": f"{path} PT_LOAD[{i}] at {p.p_paddr:#x}"}
        for i, p in enumerate(loads) if p.p_memsz
    ]


@pytest.fixture(params=ARCHES)
def arch(request):
    return request.param


@pytest.fixture(params=EXAMPLES)
def example(request, kit_dir, arch):
    path = os.path.join(kit_dir, arch, request.param)
    assert os.path.isfile(path), f"make did not produce {path}"
    return path


def test_example_is_an_executable_of_its_arch(example, arch):
    header, loads, start, _, _ = elf_facts(example)
    elf_class, machine, _, _ = ELF_FACTS[arch]
    assert (header["e_ident"]["EI_CLASS"], header["e_machine"], header["e_type"]) == (elf_class, machine, "ET_EXEC")
    assert header["e_entry"] == start  # entered at _start
    assert loads, "no PT_LOAD"
    assert all(p.p_paddr % PAGE_SIZE == 0 for p in loads)
    assert loads[0].p_paddr == DEFAULT_PHYS_ADDR
    assert all(p.p_paddr == p.p_vaddr for p in loads)  # paging is off: linked where it runs


def test_example_plan(example, arch, capsys):
    _, loads, start, _, _ = elf_facts(example)
    capsys.readouterr()
    assert dry_run(example, machine_root(arch), arch) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan == {"entry": start, "flags": ELF_FACTS[arch][2], "segments": expected_segments(example, loads),
                    "backend": "kernel", "syscall": "kexec_load"}


def test_example_is_refused_for_a_kernel_of_the_other_arch(example, arch, capsys):
    _, machine, _, other = ELF_FACTS[arch]
    assert dry_run(example, machine_root(other), other) == 255
    assert f"{machine} image, but {other} kernels enter {ELF_FACTS[other][1]} images" in capsys.readouterr().err


def test_x86_64_example_on_the_recorded_guest_with_a_backup_window(kit_dir, capsys):
    """The x86_64 guest of the VM tests (-m 512): --mem-max adds zero-filled scratch after
    the image; a window of more than half of its RAM is explained."""
    path = os.path.join(kit_dir, "x86_64", "phy_mode")
    _, loads, _, _, _ = elf_facts(path)
    end = DEFAULT_PHYS_ADDR + align_up(loads[0].p_memsz)
    from kexec_py.cli import main

    argv = ["--dry-run", "--json", "--arch", "x86_64", "--machine-root", recorded_tree("qemu-x86_64-512M"),
            "--load-preserve-context", "--args-none", "--mem-min", "0x1000000"]
    capsys.readouterr()
    assert main([*argv, "--mem-max", "0x2ffffff", path]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["flags"] == 0x3E0002
    assert plan["segments"] == expected_segments(path, loads) + [
        {"mem": end, "memsz": 0x3000000 - end, "bufsz": 0, "source": "backup (zero-filled scratch)"}]
    assert main([*argv, "--mem-max", "0x1ffdffff", path]) == 255
    assert capsys.readouterr().err == (
        f"kexec: segment {end:#x}-0x1ffdffff needs {(0x1ffe0000 - end) // 1024} KiB but the kernel refuses"
        " (EINVAL) more than half of RAM (252918 KiB of 505836 KiB): narrow --mem-min/--mem-max\n")


def test_user_payload_at_a_custom_address(user_payload, capsys):
    header, loads, start, symbols, raw = elf_facts(user_payload)
    assert (header["e_machine"], header["e_type"]) == ("EM_386", "ET_EXEC")
    assert loads[0].p_paddr == start == header["e_entry"] == 0x2400000
    assert all(p.p_paddr % PAGE_SIZE == 0 for p in loads)
    assert "payload_main" in symbols  # the user's function is in the image ...
    assert any(b"user-payload-marker" in raw[p.p_offset:p.p_offset + p.p_filesz] for p in loads)  # ... and its data
    assert sum(p.p_memsz for p in loads) >= 0x5000  # ... and its .bss
    capsys.readouterr()
    assert dry_run(user_payload) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan == {"entry": 0x2400000, "flags": 0x30002, "segments": expected_segments(user_payload, loads),
                    "backend": "kernel", "syscall": "kexec_load"}


def test_user_payload_for_x86_64(tmp_path, capsys):
    """ARCH=x86_64: the same kit, a 64-bit image; its entry state has 64-bit registers."""
    source = tmp_path / "hello64.c"
    source.write_text(
        "#include <kit/kit.h>\n"
        "_Static_assert(sizeof(kit_reg_t) == 8, \"64-bit registers\");\n"
        "int payload_main(const struct kit_entry_state *entry)\n"
        "{\n"
        "\tkit_printf(\"r15=\" KIT_REG_FMT \" %p %lx\\n\", entry->r15, (void *)entry, entry->rsp);\n"
        "\treturn 0;\n"
        "}\n"
    )
    out = tmp_path / "hello64"
    result = make(f"PAYLOAD={source}", f"OUT={out}", "ARCH=x86_64", "PHYS_ADDR=0x3000000")
    assert result.returncode == 0, f"building {source} for x86_64 failed:\n{result.stderr}"
    header, loads, start, _, _ = elf_facts(out)
    assert (header["e_ident"]["EI_CLASS"], header["e_machine"]) == ("ELFCLASS64", "EM_X86_64")
    assert loads[0].p_paddr == start == header["e_entry"] == 0x3000000
    capsys.readouterr()
    assert dry_run(str(out), machine_root("x86_64"), "x86_64") == 0
    assert json.loads(capsys.readouterr().out)["flags"] == 0x3E0002


@pytest.mark.parametrize("args, message", [
    (["ARCH=arm64"], "ARCH=arm64: the kit builds for i386 x86_64"),
    (["ARCH=x86_64", "PHYS_ADDR=0x80000000"], "x86_64: the image must end below 2 GiB"),
])
def test_bad_arch_or_address_is_refused(tmp_path, args, message):
    source = tmp_path / "p.c"
    source.write_text("#include <kit/kit.h>\nint payload_main(const struct kit_entry_state *e) { (void)e; return 0; }\n")
    result = make(f"PAYLOAD={source}", f"OUT={tmp_path / 'p'}", *args)
    assert result.returncode != 0
    assert message in result.stderr


def test_unaligned_phys_addr_is_refused_at_link_time(tmp_path):
    source = tmp_path / "p.c"
    source.write_text("#include <kit/kit.h>\nint payload_main(const struct kit_entry_state *e) { (void)e; return 0; }\n")
    result = make(f"PAYLOAD={source}", f"OUT={tmp_path / 'p'}", "PHYS_ADDR=0x2400800")
    assert result.returncode != 0
    assert "PHYS_ADDR must be page aligned" in result.stderr


# csrc/test/fault_payload.c: the test payload of tests/vm/test_payload_faults.py, one build per
# fault (FAULT_VECTOR); the kit's fault record is a symbol a later result channel can find
FAULT_SOURCE = os.path.join(KIT, "test", "fault_payload.c")
FAULT_KINDS = [("i386", 0), ("i386", 6), ("i386", 13), ("x86_64", 0), ("x86_64", 6), ("x86_64", 13), ("x86_64", 14)]
# struct kit_fault: six registers (vector, error, ip, sp, flags, cr2), then call and count
KIT_FAULT_SIZE = {"i386": 6 * 4 + 8, "x86_64": 6 * 8 + 8}


def build_fault_payload(tmp_path, arch, vector):
    out = tmp_path / f"fault_{arch}_{vector}"
    return out, make(f"PAYLOAD={FAULT_SOURCE}", f"OUT={out}", f"ARCH={arch}", f"EXTRA_CFLAGS=-DFAULT_VECTOR={vector}")


@pytest.mark.parametrize("arch, vector", FAULT_KINDS)
def test_fault_payload_builds_with_the_kits_fault_record(tmp_path, arch, vector, capsys):
    out, result = build_fault_payload(tmp_path, arch, vector)
    assert result.returncode == 0, result.stderr
    header, loads, start, symbols, _ = elf_facts(out)
    assert header["e_machine"] == ELF_FACTS[arch][1]
    assert loads[0].p_paddr == start == DEFAULT_PHYS_ADDR
    for name in ("kit_last_fault", "kit_calls", "kit_leave", "kit_fault_nesting", "payload_fault", "payload_main"):
        assert name in symbols, name
    image_end = loads[0].p_paddr + loads[0].p_memsz
    assert loads[0].p_paddr <= symbols["kit_last_fault"] < image_end  # in the image: it persists
    with open(out, "rb") as f:
        [record] = ELFFile(f).get_section_by_name(".symtab").get_symbol_by_name("kit_last_fault")
        assert record["st_size"] == KIT_FAULT_SIZE[arch]
    capsys.readouterr()
    assert dry_run(str(out), machine_root(arch), arch) == 0  # an ordinary preserve-context load


@pytest.mark.parametrize("arch, vector, message", [
    ("i386", None, "build with EXTRA_CFLAGS=-DFAULT_VECTOR=0|6|13|14"),
    ("i386", 14, "FAULT_VECTOR: 0, 6, 13, or (x86_64) 14"),  # paging is off: no #PF on i386
    ("x86_64", 3, "FAULT_VECTOR: 0, 6, 13, or (x86_64) 14"),
])
def test_fault_payload_refuses_a_fault_it_cannot_raise(tmp_path, arch, vector, message):
    out = tmp_path / "fault"
    flags = [] if vector is None else [f"EXTRA_CFLAGS=-DFAULT_VECTOR={vector}"]
    result = make(f"PAYLOAD={FAULT_SOURCE}", f"OUT={out}", f"ARCH={arch}", *flags)
    assert result.returncode != 0
    assert message in result.stderr


def test_test_payloads_are_not_among_the_examples(kit_dir, arch):
    """`make O=...` (what setup.py, and so the .deb, builds) makes the examples only."""
    assert sorted(p for p in os.listdir(os.path.join(kit_dir, arch)) if not p.startswith(".")) == sorted(EXAMPLES)
