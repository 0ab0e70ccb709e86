"""kexec_py.options: the table's own reader against argparse built from the same table.

parse_common() reads the common forms without argparse (start-up time); for every argv
it accepts, argparse must give the same values, and where argparse refuses, parse_common()
must have declined (returned None), so that the error is argparse's one line.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kexec_py.options import OPTIONS, Args, build_parser, defaults, parse, parse_common, parse_address


def argparse_values(argv: list[str]) -> dict[str, object] | None:
    """argparse's values for argv, or None where it refuses argv (a usage error)."""
    try:
        return vars(build_parser().parse_args(argv))
    except SystemExit:
        return None


# Forms the table's reader takes, each as kexec-tools' users and our tests type them.
COMMON = [
    ["--load-preserve-context", "--args-none", "phy_mode"],
    ["-e"],
    ["-e", "-x"],
    ["-u"],
    ["-p", "-u"],
    ["-S"],
    ["-S", "-l"],
    ["-l", "/boot/vmlinuz", "--initrd=/boot/initrd.img", "--reuse-cmdline", "--append", "quiet splash"],
    ["-l", "/boot/vmlinuz", "--command-line=console=ttyS0 root=/dev/sda1", "-s"],
    ["-c", "-p", "bzImage", "--ramdisk", "initrd", "--elf64-core-headers"],
    ["--load-jump-back-helper", "--entry", "0x1000"],
    ["--load-preserve-context", "--mem-min=0x100000", "--mem-max", "0x1fffffff", "img", "-d"],
    ["--call", "cpuid", "--param", "leaf=0", "--param=subleaf=1", "--json", "--backend", "shim"],
    ["--dry-run", "--json", "--arch", "x86_64", "--machine-root", "/tmp/m", "-t", "bzImage64", "k"],
    ["img", "--load"],  # IMAGE first, as argparse allows
    ["-l", "--append=", "k"],  # an empty value after =
    ["-l", "--append", "", "k"],  # an empty word as the value
    ["-f", "-y", "-i", "--args-linux", "vmlinux", "--type=elf-x86"],
    ["--print-ckr-size"],
    ["-a", "-a", "k"],  # argparse takes the same exclusive option twice; parse_common leaves it to argparse
]


@pytest.mark.parametrize("argv", COMMON, ids=[" ".join(a) or "(none)" for a in COMMON])
def test_common_forms_read_as_argparse_reads_them(argv):
    expected = argparse_values(argv)
    assert expected is not None
    fast = parse_common(argv)
    if argv == ["-a", "-a", "k"]:
        assert fast is None
    else:
        assert fast is not None and vars(fast) == expected
    assert vars(parse(argv)) == expected


# Forms left to argparse: it accepts them (abbreviations, clusters, help) or refuses them in one line.
DECLINED = [
    ["--load-pres", "img"],  # an abbreviation
    ["-lx", "img"],  # clustered short options
    ["-tbzImage", "-l", "k"],  # a short option's value attached
    ["-l", "--", "k"],
    ["-l", "a", "b"],  # two images
    ["--dry-run=yes", "-l", "k"],  # a value for a flag
    ["-l", "-e"],  # two actions
    ["--args-none", "--args-linux", "k"],
    ["--entry", "0b101", "-l", "k"],  # not a strtoul number
    ["--entry", "-5", "-l", "k"],  # negative
    ["--entry"],  # no value
    ["--append", "-x", "-l", "k"],  # a value that looks like an option
    ["--backend", "bios", "-l", "k"],  # not a choice
    ["--arch", "arm64", "-l", "k"],
    ["--frobnicate"],
    ["-"],
]


@pytest.mark.parametrize("argv", DECLINED, ids=[" ".join(a) for a in DECLINED])
def test_other_forms_go_to_argparse(argv):
    assert parse_common(argv) is None


@pytest.mark.parametrize("argv", [["--help"], ["-h"], ["-v"], ["--version"]])
def test_help_and_version_are_argparse_s(argv, capsys):
    assert parse_common(argv) is None
    with pytest.raises(SystemExit) as exit:
        parse(argv)
    assert exit.value.code == 0 and capsys.readouterr().out.startswith(("usage: kexec", "kexec-py "))


def test_args_declares_every_dest():
    dests = {o.dest for o in OPTIONS if o.kind not in ("help", "version")}
    assert set(Args.__annotations__) == dests == set(defaults())


# Words from the table: every option name, values good and bad, images, and noise.
WORDS = st.sampled_from(sorted({name for o in OPTIONS for name in o.names if not name.isidentifier()})
                        + ["img", "phy_mode", "0x1000", "010", "08", "0x", "-0", "-5", "auto", "shim", "i386",
                           "x86_64", "k=v", "", "-", "--", "-lx", "--load-pres", "--append=-x", "--entry=0x10",
                           "--mem-max=99999999999999999999999", "--backend=kernel", "--arch=i386", "--json=1"])


@settings(max_examples=3000, derandomize=True, deadline=None)
@given(st.lists(WORDS, max_size=6))
def test_the_table_s_reader_never_disagrees_with_argparse(argv):
    fast = parse_common(argv)
    if fast is not None:
        assert vars(fast) == argparse_values(argv)


@pytest.mark.parametrize("text, value", [("0x1001000", 0x1001000), ("0X1001000", 0x1001000), ("0100010000", 0x1001000),
                                         ("16781312", 0x1001000), ("0", 0), ("00", 0), ("-0", 0),
                                         ("0xffffffffffffffff", (1 << 64) - 1)])
def test_addresses_as_strtoul_reads_them(text, value):
    assert parse_address(text) == value


@pytest.mark.parametrize("text, reason", [("0b1", "bad number"), ("1_000", "bad number"), ("08", "bad number"),
                                          ("0x", "bad number"), ("", "bad number"), (" 1", "bad number"),
                                          ("+1", "bad number"), ("-1", "negative address"),
                                          ("-0x10", "negative address"),
                                          ("0x10000000000000000", "does not fit in 64 bits")])
def test_addresses_refused(text, reason):
    with pytest.raises(ValueError, match=reason):
        parse_address(text)
