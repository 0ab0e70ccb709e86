"""kexec_py.machine_files: the whole file or its first bytes, OSError as open() gives it,
and decoding as bytes.decode does; on files and on the host's /proc, whose files a
single read may not finish."""

import errno
import os

import pytest

from kexec_py.machine_files import read_bytes, read_text, read_value, shim_present

BIG = bytes(range(256)) * 1025  # over four of read_bytes' 64 KiB reads, not a multiple of one


@pytest.mark.parametrize("data, limit, expected", [
    (b"", None, b""),
    (b"0x9fc00\n", None, b"0x9fc00\n"),
    (BIG, None, BIG),
    (BIG, 4097, BIG[:4097]),
    (BIG, len(BIG) + 1, BIG),  # jump_back reads one byte past what it wants: a longer file is wrong
    (b"abc", 0, b""),
])
def test_read_bytes(tmp_path, data, limit, expected):
    path = tmp_path / "f"
    path.write_bytes(data)
    assert read_bytes(str(path), limit) == expected


def test_read_bytes_reads_proc_to_its_end():
    """/proc/self/maps is generated a page or so per read."""
    with open("/proc/self/maps", "rb") as f:
        lines = len(f.read().splitlines())
    assert lines > 3 and abs(len(read_bytes("/proc/self/maps").splitlines()) - lines) <= 2


@pytest.mark.parametrize("name, expected_errno", [("missing", errno.ENOENT), ("dir", errno.EISDIR)])
def test_read_bytes_raises_oserror_with_the_file_name(tmp_path, name, expected_errno):
    (tmp_path / "dir").mkdir()
    with pytest.raises(OSError) as raised:
        read_bytes(str(tmp_path / name))
    assert raised.value.errno == expected_errno and raised.value.filename == str(tmp_path / name)


def test_read_bytes_closes_what_it_opens(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"1\n")
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(50):
        read_bytes(str(path))
    with pytest.raises(OSError):
        read_bytes(str(tmp_path))  # EISDIR comes from read(), after the open
    assert len(os.listdir("/proc/self/fd")) == before


@pytest.mark.parametrize("data, encoding, errors, expected", [
    (b"1\n", "ascii", "strict", "1\n"),
    (b"ro\xffot=/dev/vda", "utf-8", "surrogateescape", "ro\udcffot=/dev/vda"),
    (b"a\xffb", "ascii", "replace", "a\ufffdb"),
])
def test_read_text(tmp_path, data, encoding, errors, expected):
    path = tmp_path / "f"
    path.write_bytes(data)
    assert read_text(str(path), encoding, errors) == expected


def test_read_text_refuses_what_is_not_ascii(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"\xc3\xa9")
    with pytest.raises(ValueError):
        read_text(str(path))


def test_shim_present(tmp_path):
    """The module's misc device is a character device: a link to /dev/null stands for it."""
    assert shim_present(str(tmp_path)) is False
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev/kexec_jump").symlink_to("/dev/null")
    assert shim_present(str(tmp_path)) is True


@pytest.mark.parametrize("data, expected", [(b"0x1f000 0x1000\n", "0x1f000 0x1000"), (b"", ""), (b"\xc3\xa9", None),
                                            (None, None)])
def test_read_value(tmp_path, data, expected):
    """A sysfs value stripped, None when missing or not ASCII (elfcore's crash notes, kernel's lockdown)."""
    path = tmp_path / "value"
    if data is not None:
        path.write_bytes(data)
    assert read_value(str(path)) == expected
