"""qemu-harness/bench/bench, one round: every row of the table is there for every tool,
with positive figures, so the benchmark cannot rot. No timings are asserted (TCG on a
shared machine); the goals are computed, whatever they say."""

from __future__ import annotations

import re

import pytest
from vmharness import bench

pytestmark = pytest.mark.vm


def test_bench_smoke():
    result = bench.run_in_guest(rounds=1)
    for row in bench.ROWS:
        for tool in bench.TOOLS[row]:
            figures = result["rows"][row][tool]
            assert len(figures["wall_s"]) == len(figures["rss_kib"]) == 1, (row, tool, figures)
            assert figures["wall_s"][0] > 0 and figures["rss_kib"][0] > 0, (row, tool, figures)
    assert result["rows"][bench.JUMP][bench.OURS]["exit"] == [0]  # ours comes back with 0
    text = bench.table(result)
    for row in bench.ROWS:
        for tool in bench.TOOLS[row]:
            assert re.search(rf"^{re.escape(row)} +{re.escape(tool)} +(\d+\.\d{{3}} +){{3}}\d+ +\d", text, re.M), text
    assert len(bench.goals(result)) == 4 and text.count("met") + text.count("MISSED") >= 4, text
