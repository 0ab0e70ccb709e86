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

run check_payload "$O/test/check_payload" calls=3 5
r=0
has check_payload "fake_kernel: return 1 ok" || r=1
has check_payload "fake_kernel: return 2 ok" || r=1
grep -q "^check_payload: paging on, cr0=0x8" "$O/test/check_payload.log" ||
	{ echo "  missing: check_payload: paging on, cr0=0x8..."; r=1; }
has check_payload "check_payload: call 3" || r=1
grep -q "^kit: exception 6 at EIP=0x0[0-9a-f]\{7\} (#UD" "$O/test/check_payload.log" ||
	{ echo "  missing: kit: exception 6 at EIP=..."; r=1; }
has check_payload "kit: halted" || r=1
lacks check_payload "fake_kernel: done" || r=1
verdict $r check_payload

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

run64 check_payload64 "$O/test/check_payload64" calls=3 5
r=0
has check_payload64 "fake_kernel: return 1 ok" || r=1
has check_payload64 "fake_kernel: return 2 ok" || r=1
grep -q "^check_payload: own page table, cr3=0x0000000001[0-9a-f]\{6\} cr4=0xa0$" "$O/test/check_payload64.log" ||
	{ echo "  missing: check_payload: own page table, cr3=... cr4=0xa0"; r=1; }
has check_payload64 "check_payload: call 3" || r=1
grep -q "^kit: exception 6 at RIP=0x00000000010[0-9a-f]\{5\} (#UD" "$O/test/check_payload64.log" ||
	{ echo "  missing: kit: exception 6 at RIP=..."; r=1; }
has check_payload64 "kit: halted" || r=1
lacks check_payload64 "fake_kernel: done" || r=1
verdict $r check_payload64

run64 no_return64 "$O/x86_64/phy_mode" "calls=1 plain" 5
r=0
has no_return64 "phy_mode: hello from physical mode, call 1" || r=1
has no_return64 "kit: payload returned but there is no kernel to return to (not loaded with --load-preserve-context); halted" || r=1
lacks no_return64 "fake_kernel: return" || r=1
verdict $r no_return64

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
