"""The csrc/ payload kit's output, as kexec-py sees it: i386 physical-mode ELF payloads
(ELF32, EM_386, ET_EXEC, page-aligned PT_LOADs at PHYS_ADDR, entry _start), built
with make into a temporary directory, then planned with --dry-run."""

import json
import os
import subprocess

import pytest
from elftools.elf.elffile import ELFFile

from kexec_py.ranges import PAGE_SIZE, align_up
from unit_support import HOST_TREE, REPO

KIT = os.path.join(REPO, "csrc")
EXAMPLES = ["phy_mode", "entry_report"]
DEFAULT_PHYS_ADDR = 0x01000000


def make(*args):
    if not os.path.exists(os.path.join(KIT, "Makefile")):
        pytest.fail(f"{KIT}/Makefile is missing: the payload kit cannot be built")
    return subprocess.run(["make", "-s", "-C", KIT, *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="session")
def kit_dir(tmp_path_factory):
    """`make -C csrc O=DIR`: the examples in DIR/i386/."""
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


@pytest.fixture(params=EXAMPLES)
def example(request, kit_dir):
    path = os.path.join(kit_dir, "i386", request.param)
    assert os.path.isfile(path), f"make did not produce {path}"
    return path


def test_example_is_an_i386_executable(example):
    header, loads, start, _, _ = elf_facts(example)
    assert (header["e_ident"]["EI_CLASS"], header["e_machine"], header["e_type"]) == ("ELFCLASS32", "EM_386", "ET_EXEC")
    assert header["e_entry"] == start  # entered at _start
    assert loads, "no PT_LOAD"
    assert all(p.p_paddr % PAGE_SIZE == 0 for p in loads)
    assert loads[0].p_paddr == DEFAULT_PHYS_ADDR
    assert all(p.p_paddr == p.p_vaddr for p in loads)  # paging is off: linked where it runs


def test_example_plan(example, capsys):
    _, loads, start, _, _ = elf_facts(example)
    capsys.readouterr()
    assert dry_run(example) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan == {"entry": start, "flags": 0x30002, "segments": expected_segments(example, loads)}


def test_example_is_refused_for_an_x86_64_kernel(example, capsys):
    assert dry_run(example, arch="x86_64") == 255
    assert "EM_386 image, but x86_64 kernels enter EM_X86_64 images" in capsys.readouterr().err


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
    assert plan == {"entry": 0x2400000, "flags": 0x30002, "segments": expected_segments(user_payload, loads)}


def test_unaligned_phys_addr_is_refused_at_link_time(tmp_path):
    source = tmp_path / "p.c"
    source.write_text("#include <kit/kit.h>\nint payload_main(const struct kit_entry_state *e) { (void)e; return 0; }\n")
    result = make(f"PAYLOAD={source}", f"OUT={tmp_path / 'p'}", "PHYS_ADDR=0x2400800")
    assert result.returncode != 0
    assert "PHYS_ADDR must be page aligned" in result.stderr
