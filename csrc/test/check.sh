#!/bin/sh
# test/check.sh O: run payloads built in O under the fake kernel (QEMU, TCG)
# and check their serial output.  Logs: O/test/*.log.
set -u
O=$1
T=$(dirname "$0")
FK=$O/test/fake_kernel
pass=0 fail=0

run() {		# run NAME PAYLOAD CMDLINE [TIMEOUT]
	"$T/run_qemu.sh" "$FK" "$2" "$3" "${4:-20}" >"$O/test/$1.log"
}
run64() {	# run64 NAME PAYLOAD CMDLINE [TIMEOUT]: long mode needs qemu-system-x86_64
	QEMU=qemu-system-x86_64 "$T/run_qemu.sh" "$FK" "$2" "$3" "${4:-20}" >"$O/test/$1.log"
}
has() {		# has NAME LINE: LINE occurs, whole, in the log
	grep -qxF -- "$2" "$O/test/$1.log" || { echo "  missing: $2"; return 1; }
}
matches() {	# matches NAME REGEX: a whole line matches the basic regular expression
	grep -qx -- "$2" "$O/test/$1.log" || { echo "  no line matches: $2"; return 1; }
}
lacks() {	# lacks NAME TEXT
	! grep -qF -- "$2" "$O/test/$1.log" || { echo "  unexpected: $2"; return 1; }
}
count() {	# count NAME PREFIX N
	n=$(grep -c -- "^$2" "$O/test/$1.log")
	[ "$n" -eq "$3" ] || { echo "  $n lines start with '$2', want $3"; return 1; }
}
verdict() {
	if [ "$1" -eq 0 ]; then
		echo "PASS $2"; pass=$((pass + 1))
	else
		echo "FAIL $2 (see $O/test/$2.log)"; fail=$((fail + 1))
	fi
}

run phy_mode "$O/i386/phy_mode" calls=3
r=0
for k in 1 2 3; do
	has phy_mode "phy_mode: hello from physical mode, call $k" || r=1
	has phy_mode "fake_kernel: return $k ok" || r=1
done
count phy_mode "phy_mode:" 3 || r=1
has phy_mode "fake_kernel: done" || r=1
verdict $r phy_mode

run entry_report "$O/i386/entry_report" calls=2
r=0
for line in "entry_report: begin call 1" "entry_report: begin call 2" \
	    "entry_report: eax=0xaaaa0001" "entry_report: esp=0x00300ffc" \
	    "entry_report: stack_page=0x00300000" "entry_report: eflags=0x00000002" \
	    "entry_report: cs=0x00000060" "entry_report: ss=0x00000068" \
	    "entry_report: fs=0x000000d8" "entry_report: gdtr_limit=0x00000000" \
	    "entry_report: idtr_base=0x00000000" "entry_report: cr4=0x00000000" \
	    "fake_kernel: return 2 ok" "fake_kernel: done"; do
	has entry_report "$line" || r=1
done
count entry_report "entry_report: end" 2 || r=1
count entry_report "entry_report: " 52 || r=1
verdict $r entry_report

run check_payload "$O/test/check_payload" calls=6 5
r=0
for k in 1 2 3 4; do
	has check_payload "fake_kernel: return $k ok" || r=1
done
grep -q "^check_payload: paging on, cr0=0x8" "$O/test/check_payload.log" ||
	{ echo "  missing: check_payload: paging on, cr0=0x8..."; r=1; }
# call 3: ud2, unwound; the fake kernel checked that return like the others
matches check_payload "kit: exception 6 at EIP=0x0[0-9a-f]\{7\} (#UD invalid opcode)" || r=1
has check_payload "kit: call 3 abandoned after the fault; returning to the kernel" || r=1
# call 4 read it back, then took a #PF under its own paging (undone by the unwind)
matches check_payload "check_payload: call 3 faulted: vector 6 at 0x0[0-9a-f]\{7\} (faults: 1)" || r=1
matches check_payload "kit: exception 14 at EIP=0x0[0-9a-f]\{7\} (#PF page fault) error=0x00000000 cr2=0xffc00000" || r=1
has check_payload "check_payload: payload_fault: vector 14 in call 4, cr2=0xffc00000" || r=1
has check_payload "kit: call 4 abandoned after the fault; returning to the kernel" || r=1
# call 5: a fault in payload_fault() is a nested fault: halted, no return
matches check_payload "check_payload: call 4 faulted: vector 14 at 0x0[0-9a-f]\{7\} (faults: 2)" || r=1
matches check_payload "kit: exception 0 at EIP=0x0[0-9a-f]\{7\} (#DE divide error) while handling exception 6; halted" || r=1
lacks check_payload "kit: call 5 abandoned" || r=1
lacks check_payload "fake_kernel: return 5" || r=1
lacks check_payload "fake_kernel: done" || r=1
verdict $r check_payload

# test/fault_payload.c: a fault on every odd call; each fault is reported
# and unwound, the fake kernel checks every return, even calls run normally
faults() {	# faults NAME RUNNER VECTOR NAME-OF-VECTOR IP-REGEX [EXTRA-REGEX]
	$2 "$1" "$O/test/$1" calls=4
	r=0
	for k in 1 2 3 4; do
		has "$1" "fake_kernel: return $k ok" || r=1
	done
	has "$1" "fake_kernel: done" || r=1
	count "$1" "kit: exception $3 at $5 ($4)${6:-}$" 2 || r=1
	for k in 1 3; do
		has "$1" "fault_payload: call $k raises $4" || r=1
		has "$1" "fault_payload: payload_fault: vector $3 in call $k" || r=1
		has "$1" "kit: call $k abandoned after the fault; returning to the kernel" || r=1
		matches "$1" "fault_payload: previous call $k faulted: vector $3 error=0x[0-9a-f]* at 0x0*10[0-9a-f]\{5\}" || r=1
	done
	has "$1" "fault_payload: call 2 ok" || r=1
	has "$1" "fault_payload: call 4 ok" || r=1
	lacks "$1" "no fault" || r=1
	lacks "$1" "kit_calls=" || r=1
	verdict $r "$1"
}
EIP="EIP=0x010[0-9a-f]\{5\}"
faults fault_de run 0 "#DE divide error" "$EIP"
faults fault_ud run 6 "#UD invalid opcode" "$EIP"
faults fault_gp run 13 "#GP general protection" "$EIP" " error=0x00000080"

run no_return "$O/i386/phy_mode" "calls=1 plain" 5
r=0
has no_return "phy_mode: hello from physical mode, call 1" || r=1
has no_return "kit: payload returned but there is no kernel to return to (not loaded with --load-preserve-context); halted" || r=1
lacks no_return "fake_kernel: return" || r=1
verdict $r no_return

# x86_64: the same under kexec_jump64 (relocate_kernel_64.S's contract)
run64 phy_mode64 "$O/x86_64/phy_mode" calls=3
r=0
for k in 1 2 3; do
	has phy_mode64 "phy_mode: hello from physical mode, call $k" || r=1
	has phy_mode64 "fake_kernel: return $k ok" || r=1
done
count phy_mode64 "phy_mode:" 3 || r=1
has phy_mode64 "fake_kernel: done" || r=1
verdict $r phy_mode64

run64 entry_report64 "$O/x86_64/entry_report" calls=2
r=0
for line in "entry_report: begin call 1" "entry_report: begin call 2" \
	    "entry_report: rax=0x11111111a0a0a001" "entry_report: r15=0xffffffffa0a0a00f" \
	    "entry_report: rsp=0x0000000000300ff8" "entry_report: stack_page=0x0000000000300000" \
	    "entry_report: rflags=0x0000000000000002" "entry_report: cr4=0x0000000000000020" \
	    "entry_report: cs=0x0000000000000010" "entry_report: ss=0x0000000000000018" \
	    "entry_report: gdtr_limit=0x0000000000000000" "entry_report: idtr_base=0x0000000000000000" \
	    "fake_kernel: return 2 ok" "fake_kernel: done"; do
	has entry_report64 "$line" || r=1
done
count entry_report64 "entry_report: end" 2 || r=1
count entry_report64 "entry_report: " 68 || r=1
verdict $r entry_report64

run64 check_payload64 "$O/test/check_payload64" calls=6 5
r=0
for k in 1 2 3 4; do
	has check_payload64 "fake_kernel: return $k ok" || r=1
done
grep -q "^check_payload: own page table, cr3=0x0000000001[0-9a-f]\{6\} cr4=0xa0$" "$O/test/check_payload64.log" ||
	{ echo "  missing: check_payload: own page table, cr3=... cr4=0xa0"; r=1; }
RIP="RIP=0x00000000010[0-9a-f]\{5\}"
matches check_payload64 "kit: exception 6 at $RIP (#UD invalid opcode)" || r=1
has check_payload64 "kit: call 3 abandoned after the fault; returning to the kernel" || r=1
matches check_payload64 "check_payload: call 3 faulted: vector 6 at 0x00000000010[0-9a-f]\{5\} (faults: 1)" || r=1
matches check_payload64 "kit: exception 14 at $RIP (#PF page fault) error=0x00000000 cr2=0x0000000040000000" || r=1
has check_payload64 "check_payload: payload_fault: vector 14 in call 4, cr2=0x0000000040000000" || r=1
has check_payload64 "kit: call 4 abandoned after the fault; returning to the kernel" || r=1
matches check_payload64 "check_payload: call 4 faulted: vector 14 at 0x00000000010[0-9a-f]\{5\} (faults: 2)" || r=1
matches check_payload64 "kit: exception 0 at $RIP (#DE divide error) while handling exception 6; halted" || r=1
lacks check_payload64 "kit: call 5 abandoned" || r=1
lacks check_payload64 "fake_kernel: return 5" || r=1
lacks check_payload64 "fake_kernel: done" || r=1
verdict $r check_payload64

faults fault_de64 run64 0 "#DE divide error" "$RIP"
faults fault_ud64 run64 6 "#UD invalid opcode" "$RIP"
faults fault_gp64 run64 13 "#GP general protection" "$RIP" " error=0x00000000"
faults fault_pf64 run64 14 "#PF page fault" "$RIP" " error=0x00000000 cr2=0x00007f0000000000"

run64 no_return64 "$O/x86_64/phy_mode" "calls=1 plain" 5
r=0
has no_return64 "phy_mode: hello from physical mode, call 1" || r=1
has no_return64 "kit: payload returned but there is no kernel to return to (not loaded with --load-preserve-context); halted" || r=1
lacks no_return64 "fake_kernel: return" || r=1
verdict $r no_return64

# a fault without preserve-context: reported, then halted (nowhere to go)
for a in "" 64; do
	run$a fault_no_return$a "$O/test/fault_de$a" "calls=1 plain" 5
	r=0
	has fault_no_return$a "fault_payload: call 1 raises #DE divide error" || r=1
	has fault_no_return$a "fault_payload: payload_fault: vector 0 in call 1" || r=1
	has fault_no_return$a "kit: no kernel to return to (not loaded with --load-preserve-context); halted" || r=1
	lacks fault_no_return$a "fake_kernel: return" || r=1
	lacks fault_no_return$a "abandoned" || r=1
	verdict $r fault_no_return$a
done

# kit_bios_call (kit/bios.h) from both trampolines, against QEMU's SeaBIOS
# (and SeaVGABIOS):
# without a caller the result goes to the console; the pages it borrows
# below 1 MiB hold the fake kernel's pattern again after every return
for a in "" 64; do
	arch=i386; [ -n "$a" ] && arch=x86_64
	run$a bios_e820$a "$O/$arch/bios-e820" "calls=2 bios" 30
	r=0
	count bios_e820$a "0x0000000000000000-0x000000000009fbff 1 (usable)" 2 || r=1
	count bios_e820$a "0x0000000000100000-0x0000000003fdffff 1 (usable)" 2 || r=1
	has bios_e820$a "fake_kernel: return 2 ok" || r=1
	has bios_e820$a "fake_kernel: done" || r=1
	verdict $r bios_e820$a
	run$a bios_memsize$a "$O/$arch/bios-memsize" "calls=1 bios" 30
	r=0
	has bios_memsize$a "conventional: 639 KiB" || r=1
	has bios_memsize$a "e801: 15360 KiB 1M-16M, 766 x 64 KiB above 16M" || r=1
	has bios_memsize$a "fake_kernel: done" || r=1
	verdict $r bios_memsize$a
	# the video BIOS of QEMU's std VGA (VBE) and SeaBIOS's int 13h on a 64 MiB virtio disk
	QEMU_EXTRA="-device VGA" run$a vbe_info$a "$O/$arch/vbe-info" "calls=1 bios" 60
	r=0
	has vbe_info$a "VBE 3.0, SeaBIOS VBE(C) 2011, 16384 KiB" || r=1
	has vbe_info$a "mode 0x144: 1024x768x32" || r=1
	has vbe_info$a "fake_kernel: done" || r=1
	verdict $r vbe_info$a
	truncate -s 64M "$O/test/edd.img"
	QEMU_EXTRA="-drive file=$O/test/edd.img,format=raw,if=none,id=d0 -device virtio-blk-pci,drive=d0" \
		run$a edd$a "$O/$arch/edd" "calls=1 bios" 60
	r=0
	has edd$a "drive 0x80: EDD 0x30, 131072 sectors of 512 bytes, C/H/S 130/16/63" || r=1
	has edd$a "fake_kernel: done" || r=1
	verdict $r edd$a
done

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
