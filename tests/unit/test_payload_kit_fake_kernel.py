"""The payload kit's trampolines under csrc/test/fake_kernel: a multiboot kernel
that enters and re-enters payloads exactly as relocate_kernel_32.S does on a
preserve-context jump (invalid GDTR/IDTR, CR4=0, ESP at the top of a swap page),
and x86_64 payloads as relocate_kernel_64.S does (long mode on an identity map,
CR4=PAE, CS=0x10, DS/ES/SS=0x18, RSP = swap page + 0xff8), and checks every
register and the re-entry word after each return, also after a payload's fault has been
unwound (test/fault_payload.c: #DE, #UD, #GP and, x86_64, #PF; check_payload.c: a #PF under
the payload's own paging, a nested fault that halts). Runs in QEMU (TCG) without building
Linux; real kernels are exercised in tests/vm."""

import subprocess
from pathlib import Path

CSRC = Path(__file__).resolve().parents[2] / "csrc"


def test_trampoline_contract_under_fake_kernel(tmp_path):
    result = subprocess.run(["make", "-s", "-C", str(CSRC), f"O={tmp_path}", "check"],
                            capture_output=True, text=True, timeout=300)
    report = result.stdout + result.stderr
    logs = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')}" for p in sorted((tmp_path / "test").glob("*.log")))
    assert result.returncode == 0, report + logs
    assert "FAIL" not in report, report + logs
    assert " 0 failed" in report, report + logs
    for check in ("phy_mode", "entry_report", "check_payload", "no_return", "fault_de", "fault_ud",
                  "fault_gp", "fault_no_return", "bios_e820", "bios_memsize", "vbe_info", "edd"):
        for name in (check, check + "64"):
            assert f"PASS {name}\n" in report, report + logs
    assert "PASS fault_pf64\n" in report, report + logs  # i386 runs with paging off: no #PF
