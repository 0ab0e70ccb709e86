"""qemu-harness/bench/bench, one round of every part (its five guests): every row of the
table is there for every tool, with positive figures, so the benchmark cannot rot. No
timings are asserted (TCG on a shared machine); the goals are computed, whatever they say."""

from __future__ import annotations

import re

import pytest
from vmharness import bench
from vmharness.guest import GuestDied

pytestmark = pytest.mark.vm

# The trip guest reset at the second kernel's first jump back in 3 of 8 runs while the
# bench was written (nothing on the console), and never since: 0 of 86 attempts then, 0 of
# 12 smoke runs and 120 trips (4 bench runs of 10 rounds) later. Not explained, so a guest
# that dies is tolerated there, and only that.
TRIP_RESET = pytest.mark.xfail(raises=GuestDied, strict=False, reason="unexplained guest reset at the second"
                               " kernel's first jump back (i386 patched 6.1): 3 of 8 early runs, none since")
GOALS = {"i386": 4, "trip": 1, "shim": 1, "backends": 1, "x86_64": 1}  # goals each part's rows measure


def check_part_rows(result: dict, parts: tuple[str, ...]) -> str:
    """Every row of `parts` for every tool with one positive figure; returns the table."""
    assert list(result["rows"]) == [row for part in parts for row in bench.PARTS[part]]
    for row in result["rows"]:
        tools = bench.TOOLS[row]
        assert list(result["rows"][row]) == list(tools), row
        for tool in tools:
            figures = result["rows"][row][tool]
            assert len(figures["wall_s"]) == len(figures["rss_kib"]) == 1, (row, tool, figures)
            assert figures["wall_s"][0] > 0 and figures["rss_kib"][0] > 0, (row, tool, figures)
    for row in {bench.JUMP, bench.SHIM_JUMP, bench.TRIP} & set(result["rows"]):  # ours comes back with 0
        assert result["rows"][row][bench.OURS]["exit"] == [0], row
    for tool in bench.TOOLS[bench.JUMP_BY] if bench.JUMP_BY in result["rows"] else ():  # both backends' are ours
        assert result["rows"][bench.JUMP_BY][tool]["exit"] == [0], tool
    text = bench.table(result)
    for row in result["rows"]:
        for tool in bench.TOOLS[row]:
            assert re.search(rf"^{re.escape(row)} +{re.escape(tool)} +(\d+\.\d{{3}} +){{3}}\d+ +\d", text, re.M), text
    expected = sum(GOALS[part] for part in parts)
    assert len(bench.goals(result)) == expected and len(re.findall(r"^(met   |MISSED) ", text, re.M)) == expected, text
    return text


def test_bench_smoke():
    parts = ("i386", "shim", "backends", "x86_64")
    result = bench.run_in_guests(rounds=1, parts=parts)
    check_part_rows(result, parts)
    # the stock guest runs Debian's kernel (its upstream version named), the others ours
    assert "(Debian 6.1." in bench.guest_line("shim", result["parts"]["shim"]["guest"])
    assert "(Debian" not in bench.guest_line("i386", result["parts"]["i386"]["guest"])


@TRIP_RESET
def test_bench_trip_smoke():
    result = bench.run_in_guests(rounds=1, parts=("trip",))
    check_part_rows(result, ("trip",))
    windows = result["parts"]["trip"]["windows"]
    assert list(windows) == list(bench.TOOLS[bench.TRIP]), windows
    assert all(0 < window["backed_up"] <= window["top"] for window in windows.values()), windows
