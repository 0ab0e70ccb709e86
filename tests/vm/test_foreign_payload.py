"""run-vm with a payload the project did not build: any ELF that follows the
kernel's preserve-context contract works, here 30 lines of assembly linked
without the kit (no GDT, no stack of its own: it only polls the UART), on each arch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.vm
RUN_VM = Path(__file__).resolve().parents[2] / "qemu-harness" / "run-vm"

FOREIGN_ASM = r"""
    .code32
    .globl _start
_start:                         # entered with paging off, flat DS cached, ESP in the swap page
    mov $message, %esi
next:
    movb (%esi), %cl
    test %cl, %cl
    jz done
    mov $0x3fd, %dx             # 8250 line status: wait for an empty transmitter
wait:
    inb %dx, %al
    test $0x20, %al
    jz wait
    mov $0x3f8, %dx
    mov %cl, %al
    outb %al, %dx
    inc %esi
    jmp next
done:                           # re-entry protocol: the return slot becomes our entry point
    movl (%esp), %eax
    movl $_start, (%esp)
    jmp *%eax
message:
    .asciz "foreign payload ran\r\n"
"""

FOREIGN_ASM_64 = r"""
    .code64
    .globl _start
_start:                         # entered in 64-bit mode on the kernel's identity map, RSP in the swap page
    mov $message, %esi
next:
    movb (%rsi), %cl
    test %cl, %cl
    jz done
    mov $0x3fd, %dx
wait:
    inb %dx, %al
    test $0x20, %al
    jz wait
    mov $0x3f8, %dx
    mov %cl, %al
    outb %al, %dx
    inc %rsi
    jmp next
done:                           # re-entry protocol, 64-bit
    movq (%rsp), %rax
    movq $_start, (%rsp)
    jmp *%rax
message:
    .asciz "foreign payload ran\r\n"
"""
SOURCES = {"i386": ("-m32", FOREIGN_ASM), "x86_64": ("-m64", FOREIGN_ASM_64)}


def test_run_vm_runs_a_payload_built_without_the_kit(tmp_path: Path, arch: str) -> None:
    mode, asm = SOURCES[arch]
    source = tmp_path / "foreign.S"
    source.write_text(asm)
    payload = tmp_path / "foreign"
    subprocess.run(["gcc", mode, "-nostdlib", "-static", "-no-pie", "-Wl,-N", "-Wl,-Ttext=0x2000000",
                    "-Wl,--build-id=none", "-o", payload, source], check=True)
    script = tmp_path / "jump.sh"
    script.write_text("#!/bin/sh\nset -e\n"
                      "kexec --load-preserve-context --args-none foreign\n"
                      "kexec -e\nkexec -e\necho back-after-two-jumps\n")
    result = subprocess.run([sys.executable, RUN_VM, "--arch", arch, "--add", payload,
                             "--script", script], capture_output=True, text=True, timeout=900)
    console = result.stdout.replace("\r", "")
    assert result.returncode == 0, console[-4000:] + result.stderr[-2000:]
    assert console.count("foreign payload ran\n") == 2, console[-4000:]
    assert "back-after-two-jumps" in console
