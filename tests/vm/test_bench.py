"""qemu-harness/bench/bench, one round of every part (its four guests): every row of the
table is there for every tool, with positive figures, so the benchmark cannot rot. No
timings are asserted (TCG on a shared machine); the goals are computed, whatever they say."""

from __future__ import annotations

import re

import pytest
from vmharness import bench

pytestmark = pytest.mark.vm


def test_bench_smoke():
    result = bench.run_in_guests(rounds=1)
    assert list(result["rows"]) == [row for rows in bench.PARTS.values() for row in rows]
    for row, tools in bench.TOOLS.items():
        assert list(result["rows"][row]) == list(tools), row
        for tool in tools:
            figures = result["rows"][row][tool]
            assert len(figures["wall_s"]) == len(figures["rss_kib"]) == 1, (row, tool, figures)
            assert figures["wall_s"][0] > 0 and figures["rss_kib"][0] > 0, (row, tool, figures)
    for row in (bench.JUMP, bench.SHIM_JUMP, bench.TRIP):  # ours comes back with 0
        assert result["rows"][row][bench.OURS]["exit"] == [0], row
    # the stock guest runs Debian's kernel (its upstream version named), the others ours
    assert "(Debian 6.1." in bench.guest_line("shim", result["parts"]["shim"]["guest"])
    assert "(Debian" not in bench.guest_line("i386", result["parts"]["i386"]["guest"])
    windows = result["parts"]["trip"]["windows"]
    assert list(windows) == list(bench.TOOLS[bench.TRIP]), windows
    assert all(0 < window["backed_up"] <= window["top"] for window in windows.values()), windows
    text = bench.table(result)
    for row, tools in bench.TOOLS.items():
        for tool in tools:
            assert re.search(rf"^{re.escape(row)} +{re.escape(tool)} +(\d+\.\d{{3}} +){{3}}\d+ +\d", text, re.M), text
    assert len(bench.goals(result)) == 7 and len(re.findall(r"^(met   |MISSED) ", text, re.M)) == 7, text
