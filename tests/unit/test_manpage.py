"""kexec(8) as the package build makes it: generated from the real parser by
man/kexec_manpage.py (argparse-manpage), rendered by groff without a warning,
and documenting every option string the parser defines."""

import os
import re
import shutil
import subprocess
import sys

import pytest

from kexec_py.options import build_parser
from unit_support import REPO

GENERATOR = os.path.join(REPO, "man", "kexec_manpage.py")
SECTIONS = os.path.join(REPO, "man", "kexec.8.sections")
DEBIAN_PYTHON = "/usr/bin/python3"  # what dpkg-buildpackage runs: argparse-manpage 1.2.2 on bookworm

def _has_generator(python):
    probe = ("import importlib.util as u, sys;"
             "sys.exit(0 if u.find_spec('argparse_manpage') or u.find_spec('build_manpages') else 1)")
    return subprocess.run([python, "-c", probe], capture_output=True).returncode == 0


def pythons():
    found = [sys.executable]
    if os.path.exists(DEBIAN_PYTHON) and os.path.realpath(DEBIAN_PYTHON) != os.path.realpath(sys.executable):
        found.append(DEBIAN_PYTHON)
    return found


def option_strings(parser):
    return sorted({o for action in parser._actions for o in action.option_strings})


def positional_names(parser):
    return [a.metavar or a.dest for a in parser._actions if not a.option_strings]


@pytest.fixture(scope="module", params=pythons(), ids=lambda p: "debian" if p == DEBIAN_PYTHON else "tests")
def page(request, tmp_path_factory):
    python = request.param
    if not _has_generator(python):
        if python == sys.executable:
            pytest.fail(f"argparse-manpage is not installed for {python} (requirements-dev.txt has it)")
        pytest.skip(f"{python} has no argparse-manpage (python3-argparse-manpage)")
    out = tmp_path_factory.mktemp("man") / "kexec.8"
    env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000")
    subprocess.run([python, GENERATOR, "--output", str(out)], env=env, check=True, cwd=REPO)
    return out


def render(page):
    """groff's text of the page; fails on any groff warning (-ww)."""
    if not shutil.which("groff"):
        pytest.fail("groff is not installed (bootstrap installs groff-base)")
    env = dict(os.environ, LC_ALL="C.UTF-8")
    done = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-P-cbou", str(page)],
                          capture_output=True, text=True, env=env)
    assert (done.returncode, done.stderr) == (0, "")
    return done.stdout.replace("\u2212", "-").replace("\u2010", "-")


def section(text, heading):
    match = re.search(rf"^{heading}\n(.*?)(?=^[A-Z][A-Z ]+\n|\Z)", text, re.M | re.S)
    assert match, f"no {heading} section"
    return match.group(1)


def test_header_and_sections(page):
    source = page.read_text()
    assert '.TH KEXEC 8 "2023-11-14" "kexec-py ' in source  # date from SOURCE_DATE_EPOCH
    text = render(page)
    headings = re.findall(r"^([A-Z][A-Z ]+)$", text, re.M)
    assert headings == ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "FILES", "NOTES",
                        "EXAMPLES", "SEE ALSO"]


def test_every_option_string_is_documented_under_options(page):
    options = section(render(page), "OPTIONS")
    missing = [o for o in option_strings(build_parser())
               if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", options)]
    assert missing == []
    assert all(name in options for name in positional_names(build_parser()))


def test_options_are_grouped_like_the_parser(page):
    parser = build_parser()
    options = section(render(page), "OPTIONS")
    titles = [g.title for g in parser._action_groups if g._group_actions and g is not parser._optionals]
    positions = [options.find(t[:1].upper() + t[1:]) for t in titles]
    assert -1 not in positions and positions == sorted(positions)


def test_help_text_comes_from_the_parser(page):
    text = " ".join(section(render(page), "OPTIONS").split())
    for action in build_parser()._actions:
        if action.help:
            words = " ".join(action.help.split())[:40]  # the start of each help, refilled
            assert words in text, action.option_strings


def test_hand_written_sections_name_only_real_options():
    with open(SECTIONS, encoding="utf-8") as f:
        roff = f.read().replace("\\-", "-")
    roff = "\n".join(line for line in roff.splitlines() if not line.startswith("make "))  # make's own -C
    named = set(re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", roff))
    known = set(option_strings(build_parser()))
    assert named - known == set()


def test_exit_status_matches_the_error_types():
    from kexec_py.errors import EXIT_FAILURE, EXIT_USAGE

    with open(SECTIONS, encoding="utf-8") as f:
        exit_status = f.read().split("[EXIT STATUS]")[1].split("[")[0]
    assert re.findall(r"^\.B (\d+)$", exit_status, re.M) == ["0", str(EXIT_USAGE), "130", str(EXIT_FAILURE)]


def test_man_renders_it_without_warnings(page):
    if not shutil.which("man"):
        pytest.skip("man-db is not installed")
    env = dict(os.environ, LC_ALL="C.UTF-8", MANWIDTH="80", MAN_KEEP_FORMATTING="0")
    done = subprocess.run(["man", "--warnings", "-l", str(page)], capture_output=True, text=True, env=env)
    assert (done.returncode, done.stderr) == (0, "")
    assert "kexec --load-preserve-context --args-none /usr/lib/kexec-py/i386/phy_mode" in done.stdout
