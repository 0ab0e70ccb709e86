#!/usr/bin/env python3
"""Build kexec(8): options from the real parser, the rest from kexec.8.sections.

    python3 man/kexec_manpage.py [--output FILE]

The SYNOPSIS and every option entry come from argparse-manpage run on
kexec_py.options:build_parser, so the page cannot drift from `kexec --help`.
What a parser cannot know (what kexec jump is, exit status, files, examples)
lives in kexec.8.sections, one `[HEADING]` line per section, in roff.

Works with argparse-manpage 1.2.2 (Debian bookworm's python3-argparse-manpage)
and 4.x (PyPI): only their common API is used, `Manpage(parser)` and str(),
and the generated entries are regrouped under OPTIONS by the parser's own
argument groups. The date is SOURCE_DATE_EPOCH's (reproducible builds).
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TREE = os.path.dirname(HERE)
SECTIONS = os.path.join(HERE, "kexec.8.sections")
# Sections the page has and where the hand-written ones go (man-pages(7) order).
ORDER = ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "ENVIRONMENT", "FILES",
         "NOTES", "BUGS", "EXAMPLES", "SEE ALSO")


def read_sections(path: str) -> dict[str, str]:
    """{HEADING: roff text} from a file of `[HEADING]` lines each followed by its roff."""
    sections: dict[str, list[str]] = {}
    current = None
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            heading = re.fullmatch(r"\[([A-Z][A-Z ]*)\]\n?", line)
            if heading:
                current = heading.group(1)
                if current not in ORDER or current in ("SYNOPSIS", "OPTIONS"):
                    raise SystemExit(f"{path}:{number}: section [{current}] is not one of the hand-written ones")
                sections[current] = []
            elif current is None:
                if line.strip() and not line.startswith('.\\"'):
                    raise SystemExit(f"{path}:{number}: text before the first [HEADING]")
            else:
                sections[current].append(line)
    return {name: "".join(lines).strip("\n") for name, lines in sections.items()}


def _manpage_class():
    try:
        from argparse_manpage.manpage import Manpage  # argparse-manpage >= 2
    except ImportError:
        from build_manpages.manpage import Manpage  # 1.x, as Debian bookworm ships it
    return Manpage


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("-", "\\-")


def generated_page(parser: argparse.ArgumentParser) -> list[str]:
    return str(_manpage_class()(parser)).splitlines()


def synopsis(lines: list[str]) -> list[str]:
    """The generated SYNOPSIS body, with its minus signs made minus signs."""
    start = lines.index(".SH SYNOPSIS") + 1
    end = next(i for i in range(start, len(lines)) if lines[i].startswith(".SH "))
    body = [line for line in lines[start:end] if line.strip()]
    return [line if line.startswith(".") else _escape(line) for line in body]


def option_blocks(lines: list[str]) -> list[list[str]]:
    """Each generated `.TP` entry: its invocation line, then its help as filled text."""
    blocks: list[list[str]] = []
    current = None
    for line in lines:
        if line == ".TP":
            current = []
            blocks.append(current)
        elif line.startswith(".SH") or line.startswith(".SS"):
            current = None
        elif current is not None and line.strip() and line != ".br":
            if current and line[:1] in (".", "'"):
                line = "\\&" + line  # help text, not a request
            current.append(line)
    return [b for b in blocks if b]


def _key(action: argparse.Action) -> str:
    """How the generated invocation line shows the action's first name, in bold."""
    name = action.option_strings[0] if action.option_strings else (action.metavar or action.dest)
    return "\\fB" + _escape(name) + "\\fR"


def _fallback_block(action: argparse.Action) -> list[str]:
    """An entry for an action the generator leaves out (argparse-manpage skips --help)."""
    return [", ".join("\\fB" + _escape(o) + "\\fR" for o in action.option_strings), _escape(action.help or "")]


def options(parser: argparse.ArgumentParser, blocks: list[list[str]]) -> list[str]:
    """OPTIONS: one .SS per argument group of the parser, its entries in parser order."""
    out = []
    used = set()
    # argparse-manpage walks the same groups; argparse's default one (-h) goes last.
    groups = [g for g in parser._action_groups if g is not parser._optionals] + [parser._optionals]
    for group in groups:
        actions = [a for a in group._group_actions if a.help != argparse.SUPPRESS]
        if not actions:
            continue
        title = "other options" if group is parser._optionals else group.title or ""
        out.append(".SS " + _escape(title[:1].upper() + title[1:]))
        for action in actions:
            key = _key(action)
            found = [i for i, b in enumerate(blocks) if i not in used and key in b[0]]
            if found:
                used.add(found[0])
                entry = blocks[found[0]]
            else:
                entry = _fallback_block(action)
            out += [".TP"] + entry
    if len(used) != len(blocks):
        missing = [blocks[i][0] for i in range(len(blocks)) if i not in used]
        raise SystemExit(f"generated entries that match no parser action: {missing}")
    return out


def page_date() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = (datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc) if epoch
            else datetime.datetime.now(datetime.timezone.utc))
    return when.strftime("%Y-%m-%d")


def build_page(parser: argparse.ArgumentParser, sections: dict[str, str], version: str) -> str:
    generated = generated_page(parser)
    description = [_escape(parser.description)] if parser.description else []
    body = {
        "NAME": [sections["NAME"]],
        "SYNOPSIS": synopsis(generated),
        "DESCRIPTION": description + ([".PP", sections["DESCRIPTION"]] if "DESCRIPTION" in sections else []),
        "OPTIONS": options(parser, option_blocks(generated)),
    }
    for name, text in sections.items():
        body.setdefault(name, [text])
    lines = [
        '.\\" Generated by man/kexec_manpage.py from kexec_py.options:build_parser and man/kexec.8.sections.',
        f'.TH KEXEC 8 "{page_date()}" "kexec-py {version}" "System Manager\'s Manual"',
        ".nh",  # option names are long: neither hyphenate them
        ".ad l",  # nor stretch the lines around them
    ]
    for name in ORDER:
        if name in body:
            lines.append(f".SH {name}")
            lines += body[name]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--output", "-o", default="-", help="file to write (default: stdout)")
    cli.add_argument("--sections", default=SECTIONS, help="the hand-written sections")
    args = cli.parse_args(argv)

    os.environ["COLUMNS"] = "80"  # argparse wraps help at the terminal width: keep the source stable
    sys.path.insert(0, TREE)
    from kexec_py import __version__
    from kexec_py.options import build_parser

    page = build_page(build_parser(), read_sections(args.sections), __version__)
    if args.output == "-":
        sys.stdout.write(page)
    else:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
