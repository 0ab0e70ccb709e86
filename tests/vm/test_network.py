"""kexec -e takes every interface but lo down before the jump and, when a
preserve-context image comes back, brings back exactly what was up: links,
addresses (with labels) and routes. Proven with a dummy and a veth pair."""

from __future__ import annotations

import re

import pytest

from guest_paths import PHY_MODE
from vmharness.guest import Guest

pytestmark = pytest.mark.vm

NETWORK = """
set -e
ip link add dum0 type dummy
ip link add dum1 type dummy
ip link add veth0 type veth peer name veth1
ip link set dum0 up
ip link set veth0 up
ip link set veth1 up
ip addr add 192.0.2.1/24 dev dum0
ip addr add 192.0.2.2/24 dev dum0 label dum0:sec
ip addr add 198.51.100.1/30 dev veth0
ip addr add 198.51.100.2/30 dev veth1
ip -6 addr add 2001:db8:1::1/64 dev dum0 nodad
ip route add 203.0.113.0/24 dev dum0 proto static
ip route add 198.18.0.0/15 via 192.0.2.254 dev dum0 metric 50
ip route add 10.0.0.0/8 via 198.51.100.2 dev veth0
ip -6 route add 2001:db8:9::/48 via 2001:db8:1::ff dev dum0
"""

# state to compare: which links are up, addresses (not the kernel's link-local ones,
# not lifetimes), main-table routes; sorted, since restore order is not the kernel's
STATE = r"""
{ ip -o link show up | awk -F': ' '{print "up", $2}'
  ip -o addr show | grep -v ' fe80::' | sed 's/\\.*//; s/ *valid_lft.*//'
  ip route show table main
  ip -6 route show table main | grep -v '^fe80::'
} | sed 's/  */ /g' | sort
"""


def network_state(g: Guest) -> list[str]:
    return g.check(STATE).splitlines()


def link_events(g: Guest) -> list[str]:
    return re.findall(r"^\d+: (\S+?)(?:@\S+)?: <([^>]*)>", g.check("cat /tmp/links.log"), re.M)


def test_interfaces_go_down_for_the_jump_and_come_back(guest_factory) -> None:
    g = guest_factory()
    g.check(NETWORK)
    before = network_state(g)
    assert "up dum0" in before and "up veth0@veth1" in before and "up dum1" not in before
    assert any("dum0:sec" in line for line in before)
    # >>: ip writes with O_APPEND, so that after `: > /tmp/links.log` below its next event
    # lands at the start of the file, not past a hole of NULs where ^ never matches
    g.check("ip monitor link >> /tmp/links.log 2>&1 & echo $! > /tmp/monitor.pid; sleep 1")
    g.check(f"kexec --load-preserve-context --args-none {PHY_MODE}")

    rc, output = g.run("kexec -d -e", timeout=120)
    assert rc == 0, output
    assert "phy_mode: hello from physical mode, call 1" in output
    assert "ifdown: dum0 " in output and "192.0.2.2/24" in output
    assert "ifdown: lo" not in output and "ifdown: dum1" not in output
    assert network_state(g) == before, "kexec -e did not bring the network back as it was"

    events = link_events(g)
    for name in ("dum0", "veth0", "veth1"):
        flags = [f.split(",") for n, f in events if n == name]
        assert any("UP" not in f for f in flags), f"{name} never went down: {events}"
        assert "UP" in flags[-1], f"{name} is not up again: {events}"
    assert not [n for n, _ in events if n in ("lo", "dum1")]

    # again, without reloading: the restore is repeatable
    rc, output = g.run("kexec -e", timeout=120)
    assert rc == 0 and "call 2" in output, output
    assert network_state(g) == before

    # -x leaves the interfaces alone and never imports pyroute2
    g.check("sleep 1; : > /tmp/links.log")
    rc, output = g.run("python3 -X importtime /usr/sbin/kexec -x -e 2>/tmp/importtime.log", timeout=120)
    assert rc == 0 and "call 3" in output, output
    assert link_events(g) == []
    imported = g.check("cat /tmp/importtime.log")
    assert "pyroute2" not in imported and "elftools" not in imported
    assert network_state(g) == before
    g.run("kill $(cat /tmp/monitor.pid)")
