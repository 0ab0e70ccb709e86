"""Network interfaces around kexec -e (kexec_py.netif, the interface model): which go
down, what comes back, the procedures around the jump (take_down with its rollback,
restore going on past failures) and the -e sequence in the CLI. Planning is tested
on netlink-shaped records (what kexec_py.rtnetlink.record makes of pyroute2's
messages), the procedures through FakeNetlink, a recording fake of the netlink seam;
nothing here opens a netlink socket or touches this machine's interfaces
(test_rtnetlink.py tests the adapter over pyroute2)."""

import errno
import os
import subprocess
import sys
from socket import AF_INET, AF_INET6

import pytest

from kexec_py import netif
from kexec_py.errors import KernelError
from kexec_py.kernel import any_interface_up
from kexec_py.netif import NetlinkFailure, NetworkError, Snapshot
from unit_support import REPO, FakeKernel

UP, LOWER_UP, LOOPBACK, BROADCAST, MULTICAST = 0x1, 0x10000, 0x8, 0x2, 0x1000
FOREVER = 0xFFFFFFFF
PERMANENT, NODAD, TEMPORARY, NOPREFIXROUTE, DADFAILED = 0x80, 0x02, 0x01, 0x200, 0x08
MAIN, LOCAL = 254, 255
KERNEL, BOOT, STATIC, RA = 2, 3, 4, 9
SCOPE_UNIVERSE, SCOPE_LINK, SCOPE_HOST = 0, 253, 254


# --- records shaped like pyroute2 messages (header fields, "attrs" by NLA name) ------------------

def link(index, name, flags):
    return {"family": 0, "ifi_type": 1, "index": index, "flags": flags, "change": 0,
            "attrs": {"IFLA_IFNAME": name}}


def addr(index, family, address, prefixlen, scope=SCOPE_UNIVERSE, flags=PERMANENT, proto=None,
         label=None, broadcast=None, local=None, preferred=FOREVER, valid=FOREVER):
    attrs = {"IFA_ADDRESS": address, "IFA_FLAGS": flags,
             "IFA_CACHEINFO": {"ifa_preferred": preferred, "ifa_valid": valid, "cstamp": 5, "tstamp": 5}}
    if family == AF_INET:
        attrs["IFA_LOCAL"] = local or address
    for key, value in (("IFA_LABEL", label), ("IFA_BROADCAST", broadcast), ("IFA_PROTO", proto)):
        if value is not None:
            attrs[key] = value
    return {"family": family, "prefixlen": prefixlen, "flags": flags & 0xFF, "scope": scope,
            "index": index, "attrs": attrs}


def route(family, dst=None, dst_len=0, oif=None, gateway=None, table=MAIN, proto=BOOT,
          scope=SCOPE_UNIVERSE, rtype=1, priority=None, prefsrc=None, multipath=None, **extra):
    attrs = {"RTA_TABLE": table}
    for key, value in (("RTA_DST", dst), ("RTA_OIF", oif), ("RTA_GATEWAY", gateway),
                       ("RTA_PRIORITY", priority), ("RTA_PREFSRC", prefsrc)):
        if value is not None:
            attrs[key] = value
    if multipath is not None:
        attrs["RTA_MULTIPATH"] = [
            {"flags": 0, "hops": 0, "oif": o, "attrs": {"RTA_GATEWAY": g}} for o, g in multipath
        ]
    attrs.update(extra)
    return {"family": family, "dst_len": dst_len, "src_len": 0, "tos": 0, "table": min(table, 255),
            "proto": proto, "scope": scope, "type": rtype, "flags": 0, "attrs": attrs}


# A guest like the one the VM test builds: eth0 (DHCP-less static config), a dummy
# and a veth pair with IPv4 and IPv6, one interface down, and what the kernel adds.
LINKS = [
    link(1, "lo", UP | LOOPBACK | LOWER_UP),
    link(2, "eth0", UP | BROADCAST | MULTICAST | LOWER_UP),
    link(3, "dummy0", UP | BROADCAST),
    link(4, "ifb0", BROADCAST),  # down: stays down, untouched
    link(5, "veth1", UP | BROADCAST | MULTICAST | LOWER_UP),
    link(6, "veth0", UP | BROADCAST | MULTICAST | LOWER_UP),
]
ADDRESSES = [
    addr(1, AF_INET, "127.0.0.1", 8, scope=SCOPE_HOST, label="lo"),
    addr(1, AF_INET6, "::1", 128, scope=SCOPE_HOST, proto=1),
    addr(2, AF_INET, "10.0.2.15", 24, label="eth0", broadcast="10.0.2.255"),
    addr(2, AF_INET, "10.0.2.16", 24, label="eth0:1", broadcast="10.0.2.255", flags=PERMANENT | 0x01),
    addr(2, AF_INET6, "fe80::5054:ff:fe12:3456", 64, scope=SCOPE_LINK, proto=3),  # kernel link-local
    addr(3, AF_INET, "192.0.2.1", 24, broadcast="192.0.2.255", label="dummy0"),
    addr(3, AF_INET6, "2001:db8:1::1", 64, flags=PERMANENT | NODAD),
    addr(3, AF_INET6, "fe80::1", 64, scope=SCOPE_LINK),  # no IFA_PROTO (kernel < 6.1 or old pyroute2)
    addr(5, AF_INET, "198.51.100.2", 30, label="veth1"),
    addr(6, AF_INET, "198.51.100.1", 30, label="veth0"),
    addr(6, AF_INET6, "2001:db8:2::1", 64),
    addr(6, AF_INET6, "2001:db8:3::5", 64, flags=0, proto=2, preferred=600, valid=3600),  # SLAAC
    addr(6, AF_INET6, "2001:db8:3::abcd", 64, flags=TEMPORARY, preferred=500, valid=3000),  # privacy
    addr(6, AF_INET6, "2001:db8:4::9", 64, flags=0, preferred=300, valid=900),  # DHCPv6, finite
]
ROUTES = [
    route(AF_INET, oif=2, gateway="10.0.2.2"),  # default via eth0 (proto boot)
    route(AF_INET, "10.0.2.0", 24, oif=2, proto=KERNEL, scope=SCOPE_LINK, prefsrc="10.0.2.15"),
    route(AF_INET, "203.0.113.0", 24, oif=3, proto=STATIC, scope=SCOPE_LINK),  # on-link, dummy0
    route(AF_INET, "172.16.0.0", 12, oif=6, gateway="198.51.100.2", proto=STATIC, priority=20),
    route(AF_INET, "10.99.0.0", 16, proto=STATIC, multipath=[(2, "10.0.2.2"), (6, "198.51.100.2")]),
    route(AF_INET, "10.0.2.15", 32, oif=2, table=LOCAL, proto=KERNEL, scope=SCOPE_HOST, rtype=2),
    route(AF_INET, "127.0.0.0", 8, oif=1, table=LOCAL, proto=KERNEL, scope=SCOPE_HOST, rtype=2),
    route(AF_INET, "10.50.0.0", 16, oif=6, gateway="198.51.100.2", table=100, proto=STATIC),
    route(AF_INET, "100.64.0.0", 10, proto=STATIC, rtype=6),  # prohibit: through no interface
    route(AF_INET6, "2001:db8:1::", 64, oif=3, proto=KERNEL, priority=256),
    route(AF_INET6, "fe80::", 64, oif=3, proto=KERNEL, priority=256),
    route(AF_INET6, "2001:db8:9::", 48, oif=6, gateway="2001:db8:2::2", proto=STATIC, priority=1024),
    route(AF_INET6, None, 0, oif=6, gateway="fe80::2", proto=RA, priority=1024, RTA_EXPIRES=1700),
    route(AF_INET6, "ff00::", 8, oif=6, table=LOCAL, proto=KERNEL, priority=256, rtype=5),
]


@pytest.fixture(scope="module")
def snapshot():
    return netif.take_snapshot(LINKS, ADDRESSES, ROUTES)


# --- what goes down ---------------------------------------------------------------------------

def test_every_up_interface_but_loopback_goes_down(snapshot):
    assert [(i.index, i.name) for i in snapshot.interfaces] == [(2, "eth0"), (3, "dummy0"), (5, "veth1"), (6, "veth0")]
    assert [i.name for i in netif.down_order(snapshot)] == ["veth0", "veth1", "dummy0", "eth0"]


@pytest.mark.parametrize("name, flags, down", [
    ("eth0", UP, True),
    ("eth0", UP | LOWER_UP | MULTICAST, True),
    ("eth0", BROADCAST, False),  # already down
    ("lo", UP | LOOPBACK, False),
    ("lo", UP, False),  # by name too, as kexec-tools
    ("lo2", UP | LOOPBACK, False),
])
def test_candidates(name, flags, down):
    assert netif.is_candidate(link(7, name, flags)) is down


def test_nothing_up_nothing_to_do():
    empty = netif.take_snapshot([link(1, "lo", UP | LOOPBACK)], ADDRESSES[:2], ROUTES[6:7])
    assert empty == Snapshot() and empty.describe() == "ifdown: no interface but lo is up"
    netif.restore(empty, connect=never_connect)  # nothing to restore: no netlink socket is even opened


# --- which addresses come back ----------------------------------------------------------------

def kept_addresses(snapshot):
    return {(a.index, str(a)) for i in snapshot.interfaces for a in i.addresses}


def test_addresses_to_restore(snapshot):
    assert kept_addresses(snapshot) == {
        (2, "10.0.2.15/24"), (2, "10.0.2.16/24"),
        (3, "192.0.2.1/24"), (3, "2001:db8:1::1/64"),
        (5, "198.51.100.2/30"),
        (6, "198.51.100.1/30"), (6, "2001:db8:2::1/64"), (6, "2001:db8:4::9/64"),
    }


@pytest.mark.parametrize("record, reason", [
    (ADDRESSES[4], "link-local address made by the kernel"),
    (ADDRESSES[7], "link-local, made by the kernel on up"),
    (ADDRESSES[11], "made by the kernel from a router advertisement"),
    (ADDRESSES[12], "privacy address made by the kernel"),
    (addr(6, AF_INET6, "2001:db8:2::7", 64, flags=PERMANENT | DADFAILED), "duplicate address detection failed"),
    (addr(6, AF_INET6, "fe80::9", 64, scope=SCOPE_LINK, proto=0), None),  # set by hand (IFA_PROTO unspec)
    (ADDRESSES[2], None),
    (ADDRESSES[3], None),  # IPv4 secondary: 0x01 is IFA_F_SECONDARY there, not "temporary"
    (addr(2, AF_INET, "169.254.7.7", 16, scope=SCOPE_LINK), None),
    (ADDRESSES[13], None),
])
def test_address_skip_reasons(record, reason):
    assert netif.address_skip_reason(record) == reason


def test_address_requests_carry_what_ip_address_add_needs(snapshot):
    by_text = {str(a): a for i in snapshot.interfaces for a in i.addresses}
    assert by_text["10.0.2.16/24"].add_request() == {
        "index": 2, "family": AF_INET, "address": "10.0.2.16", "prefixlen": 24, "scope": 0,
        "local": "10.0.2.16", "broadcast": "10.0.2.255", "label": "eth0:1"}
    assert by_text["2001:db8:1::1/64"].add_request() == {
        "index": 3, "family": AF_INET6, "address": "2001:db8:1::1", "prefixlen": 64, "scope": 0,
        "flags": NODAD}  # PERMANENT is the kernel's state, NODAD the user's choice
    assert by_text["2001:db8:4::9/64"].add_request() == {
        "index": 6, "family": AF_INET6, "address": "2001:db8:4::9", "prefixlen": 64, "scope": 0,
        "preferred_lft": 300, "valid_lft": 900, "cacheinfo": {"preferred": 300, "valid": 900}}


def test_point_to_point_address():
    peer = netif.to_address(addr(9, AF_INET, "10.8.0.1", 32, local="10.8.0.2"))
    assert (str(peer), peer.own, peer.add_request()["local"]) == ("10.8.0.2 peer 10.8.0.1/32", "10.8.0.2", "10.8.0.2")


# --- which routes come back -------------------------------------------------------------------

def test_routes_to_restore(snapshot):
    assert [str(r) for r in snapshot.routes] == [
        "default via 10.0.2.2 dev #2",
        "203.0.113.0/24 dev #3",
        "172.16.0.0/12 via 198.51.100.2 dev #6",
        "10.99.0.0/16 nexthop via 10.0.2.2 dev #2 nexthop via 198.51.100.2 dev #6",
        "2001:db8:9::/48 via 2001:db8:2::2 dev #6",
    ]


@pytest.mark.parametrize("record, reason", [
    (ROUTES[1], "proto kernel: the kernel makes it again"),
    (ROUTES[9], "proto kernel: the kernel makes it again"),
    (ROUTES[12], "proto ra: the kernel makes it again"),
    (route(AF_INET, "10.1.0.0", 16, oif=2, gateway="10.0.2.9", proto=1), "proto redirect: the kernel makes it again"),
    (route(AF_INET, "10.2.0.0", 16, oif=2, proto=STATIC, rtype=2), "route type 2, not unicast"),
    (route(AF_INET, "10.3.0.0", 16, proto=STATIC, RTA_NH_ID=7), "uses a nexthop object (ip nexthop), not restored by kexec-py"),
    (route(AF_INET6, "2001:db8:5::", 64, oif=6, proto=STATIC, RTA_EXPIRES=50), "expires: learned, not configured"),
    (ROUTES[0], None),
    (ROUTES[4], None),
])
def test_route_skip_reasons(record, reason):
    assert netif.route_skip_reason(record) == reason


def test_other_tables_and_routes_through_no_downed_interface_are_not_recorded(snapshot):
    recorded = {str(r) for r in snapshot.routes}
    assert not any("10.50.0.0" in r or "100.64.0.0" in r or "127.0.0.0" in r for r in recorded)
    assert not any("10.50.0.0" in what or "100.64" in what for what, _ in snapshot.skipped)


def test_route_requests(snapshot):
    default, onlink, via, multipath, v6 = snapshot.routes
    assert default.add_request() == {"family": AF_INET, "dst_len": 0, "table": MAIN, "proto": BOOT, "scope": 0,
                                     "type": 1, "tos": 0, "oif": 2, "gateway": "10.0.2.2"}
    assert onlink.add_request()["scope"] == SCOPE_LINK and "gateway" not in onlink.add_request()
    assert via.add_request()["priority"] == 20
    assert multipath.add_request()["multipath"] == [
        {"oif": 2, "hops": 0, "flags": 0, "gateway": "10.0.2.2"},
        {"oif": 6, "hops": 0, "flags": 0, "gateway": "198.51.100.2"}]
    assert "oif" not in multipath.add_request()
    assert (v6.add_request()["dst"], v6.add_request()["priority"]) == ("2001:db8:9::", 1024)


def test_route_metrics_are_kept():
    rec = route(AF_INET, "10.4.0.0", 16, oif=2, gateway="10.0.2.2", proto=STATIC,
                RTA_METRICS={"attrs": {"RTAX_MTU": 1400}})
    assert netif.to_route(rec).add_request()["metrics"] == {"RTAX_MTU": 1400}


def test_describe_names_interfaces(snapshot):
    text = snapshot.describe()
    assert "ifdown: eth0 (index 2): 10.0.2.15/24, 10.0.2.16/24" in text
    assert "ifdown: route default via 10.0.2.2 dev eth0" in text
    assert "ifdown: not restored: route 10.0.2.0/24 dev eth0 (proto kernel: the kernel makes it again)" in text
    assert "ifdown: not restored: eth0 fe80::5054:ff:fe12:3456/64 (link-local address made by the kernel)" in text


# --- planning the restore from the state after the return --------------------------------------

def after_return(up=(), gone=(), renamed=None, addresses=None):
    """The links after the jump came back: all recorded ones down unless in up."""
    links = [LINKS[0], LINKS[3]]
    for rec in LINKS[1:3] + LINKS[4:]:
        name = rec["attrs"]["IFLA_IFNAME"]
        if name in gone:
            continue
        if renamed and name in renamed:
            name = renamed[name]
        flags = rec["flags"] if name in up else rec["flags"] & ~UP
        links.append(link(rec["index"], name, flags))
    # IPv4 addresses survive a link going down, IPv6 ones do not
    kept = [a for a in ADDRESSES if a["family"] == AF_INET] if addresses is None else addresses
    return links, kept


def test_restore_after_a_round_trip(snapshot):
    plan = netif.plan_restore(snapshot, *after_return())
    assert [i.name for i in plan.links_up] == ["eth0", "dummy0", "veth1", "veth0"]  # lower first
    assert [str(a) for a in plan.addresses] == ["2001:db8:1::1/64", "2001:db8:2::1/64", "2001:db8:4::9/64"]
    assert [str(r) for r in plan.routes] == [
        "203.0.113.0/24 dev #3",  # on-link first: the gateways below are reached through it
        "default via 10.0.2.2 dev #2",
        "172.16.0.0/12 via 198.51.100.2 dev #6",
        "10.99.0.0/16 nexthop via 10.0.2.2 dev #2 nexthop via 198.51.100.2 dev #6",
        "2001:db8:9::/48 via 2001:db8:2::2 dev #6",
    ]
    assert plan.problems == ()


def test_restore_after_a_failed_jump_when_everything_is_still_there(snapshot):
    plan = netif.plan_restore(snapshot, LINKS, ADDRESSES)
    assert plan.links_up == () and plan.addresses == ()
    assert len(plan.routes) == len(snapshot.routes)  # re-added: EEXIST is tolerated


def test_restore_skips_links_already_up(snapshot):
    plan = netif.plan_restore(snapshot, *after_return(up={"eth0"}))
    assert [i.name for i in plan.links_up] == ["dummy0", "veth1", "veth0"]


def test_restore_reports_vanished_and_renamed_interfaces(snapshot):
    plan = netif.plan_restore(snapshot, *after_return(gone={"veth1"}, renamed={"dummy0": "dummy9"}))
    assert [i.name for i in plan.links_up] == ["eth0", "veth0"]
    assert plan.problems == (
        "dummy0 (index 3) is now called dummy9",
        "veth1 (index 5) is gone",
        "route 203.0.113.0/24 dev #3: its interface is gone",
    )
    assert all(3 not in r.interfaces and 5 not in r.interfaces for r in plan.routes)
    assert all(a.index not in (3, 5) for a in plan.addresses)


def test_address_present_by_local_address_and_prefix(snapshot):
    moved = [addr(3, AF_INET6, "2001:db8:1::1", 64, flags=PERMANENT)]  # flags differ: still there
    _, addresses = after_return(addresses=moved)
    plan = netif.plan_restore(snapshot, after_return()[0], addresses)
    assert "2001:db8:1::1/64" not in [str(a) for a in plan.addresses]
    assert "10.0.2.15/24" in [str(a) for a in plan.addresses]  # gone now: added back


# --- take_down() and restore() through the netlink seam -----------------------------------------

def never_connect():
    raise AssertionError("no netlink socket may be opened")


class FakeNetlink:
    """kexec_py.netif.Netlink, recorded: a machine (links, addresses, routes as records)
    that the requests change as the kernel would (a link taken down loses its IPv6
    addresses), and the requests in order: "open", "down veth0", "up eth0",
    "add 10.0.2.15/24 to 2", "add route 203.0.113.0/24", "close". fail maps a request
    (or "links", "addresses", "routes" for the dumps) to the errno it is refused with;
    0 refuses it without an errno, as pyroute2's own ValueErrors do."""

    def __init__(self, links=LINKS, addresses=ADDRESSES, routes=ROUTES, fail=None):
        self.machine_links = [dict(rec) for rec in links]
        self.machine_addresses = list(addresses)
        self.machine_routes = list(routes)
        self.fail = fail or {}
        self.requests = []
        self.dumps = []  # "links", "addresses", "routes", in order

    def connect(self):
        return self

    def __enter__(self):
        self.requests.append("open")
        return self

    def __exit__(self, *exc):
        self.requests.append("close")

    def _refuse(self, request):
        if request in self.fail:
            err = self.fail[request]
            raise NetlinkFailure(os.strerror(err) if err else "pyroute2 refused it", err or None)

    def links(self):
        self.dumps.append("links")
        self._refuse("links")
        return [dict(rec) for rec in self.machine_links]

    def addresses(self):
        self.dumps.append("addresses")
        self._refuse("addresses")
        return list(self.machine_addresses)

    def routes(self):
        self.dumps.append("routes")
        self._refuse("routes")
        return list(self.machine_routes)

    def set_link(self, index, state):
        rec = next(rec for rec in self.machine_links if rec["index"] == index)
        request = f"{state} {rec['attrs']['IFLA_IFNAME']}"
        self.requests.append(request)
        self._refuse(request)
        rec["flags"] = rec["flags"] | UP if state == "up" else rec["flags"] & ~UP
        if state == "down":
            self.machine_addresses = [a for a in self.machine_addresses
                                      if not (a["index"] == index and a["family"] == AF_INET6)]

    def add_address(self, request):
        own = request.get("local") or request["address"]
        text = f"add {own}/{request['prefixlen']} to {request['index']}"
        self.requests.append(text)
        self._refuse(text)
        self.machine_addresses.append(addr(request["index"], request["family"], request["address"],
                                           request["prefixlen"], local=request.get("local")))

    def add_route(self, request):
        text = f"add route {request.get('dst', 'default')}/{request['dst_len']}"
        self.requests.append(text)
        self._refuse(text)


def test_take_down_records_then_takes_down_upper_devices_first():
    fake = FakeNetlink()
    snapshot = netif.take_down(fake.connect)
    assert snapshot == netif.take_snapshot(LINKS, ADDRESSES, ROUTES)
    assert fake.requests == ["open", "down veth0", "down veth1", "down dummy0", "down eth0", "close"]


def test_take_down_with_nothing_up_makes_no_request():
    fake = FakeNetlink(links=LINKS[:1] + LINKS[3:4])  # lo, and ifb0 which is down
    assert netif.take_down(fake.connect) == Snapshot()
    assert fake.requests == ["open", "close"]


@pytest.mark.parametrize("dump, message", [
    ("links", "cannot list network interfaces: Operation not permitted"),
    ("addresses", "cannot list addresses: Operation not permitted"),
    ("routes", "cannot list routes: Operation not permitted"),
])
def test_take_down_fails_before_any_request_when_a_dump_fails(dump, message):
    fake = FakeNetlink(fail={dump: errno.EPERM})
    with pytest.raises(NetworkError) as failed:
        netif.take_down(fake.connect)
    assert (str(failed.value), fake.requests) == (message, ["open", "close"])


def test_take_down_rolls_back_what_went_down():
    """veth0 and veth1 went down, dummy0 would not: veth0 and veth1 come back with their
    addresses and the routes through them only (the others never went away)."""
    fake = FakeNetlink(fail={"down dummy0": errno.EBUSY})
    with pytest.raises(NetworkError) as failed:
        netif.take_down(fake.connect)
    assert str(failed.value) == "cannot take dummy0 down: Device or resource busy"
    assert fake.requests == [
        "open", "down veth0", "down veth1", "down dummy0",
        "up veth1", "up veth0", "add 2001:db8:2::1/64 to 6", "add 2001:db8:4::9/64 to 6",
        "add route 172.16.0.0/12", "add route 2001:db8:9::/48",
        "close",
    ]
    assert [rec["flags"] & UP for rec in fake.machine_links] == [rec["flags"] & UP for rec in LINKS]


def test_take_down_refused_at_the_first_interface_needs_no_rollback():
    fake = FakeNetlink(fail={"down veth0": errno.EPERM})
    with pytest.raises(NetworkError, match=r"^cannot take veth0 down: Operation not permitted$"):
        netif.take_down(fake.connect)
    assert fake.requests == ["open", "down veth0", "close"]
    assert fake.dumps == ["links", "addresses", "routes"]  # the snapshot's: nothing is read again


def test_a_failed_rollback_is_said_on_the_same_line():
    fake = FakeNetlink(fail={"down dummy0": errno.EBUSY, "up veth1": errno.ENODEV})
    with pytest.raises(NetworkError) as failed:
        netif.take_down(fake.connect)
    assert str(failed.value) == (
        "cannot take dummy0 down: Device or resource busy; bringing back veth0, veth1 failed too:"
        " network not fully restored: cannot take veth1 up: No such device")
    assert "up veth0" in fake.requests and fake.requests[-1] == "close"


def test_rollback_keeps_the_routes_of_the_interfaces_that_went_down(snapshot):
    partial = netif.rollback(snapshot, [i for i in snapshot.interfaces if i.name in ("veth0", "veth1")])
    assert partial.names() == ["veth1", "veth0"]
    assert [str(r) for r in partial.routes] == ["172.16.0.0/12 via 198.51.100.2 dev #6",
                                                "2001:db8:9::/48 via 2001:db8:2::2 dev #6"]


def test_round_trip_brings_the_machine_back():
    fake = FakeNetlink()
    snapshot = netif.take_down(fake.connect)
    assert not any(rec["flags"] & UP for rec in fake.machine_links if rec["attrs"]["IFLA_IFNAME"] != "lo")
    fake.requests.clear()
    netif.restore(snapshot, fake.connect)
    assert fake.requests == [
        "open",
        "up eth0", "up dummy0", "up veth1", "up veth0",  # lower devices first
        "add 2001:db8:1::1/64 to 3", "add 2001:db8:2::1/64 to 6", "add 2001:db8:4::9/64 to 6",
        "add route 203.0.113.0/24",  # on-link first: the gateways below are reached through it
        "add route default/0", "add route 172.16.0.0/12", "add route 10.99.0.0/16", "add route 2001:db8:9::/48",
        "close",
    ]
    assert [rec["flags"] for rec in fake.machine_links] == [rec["flags"] for rec in LINKS]
    kept = {(a["index"], a["attrs"]["IFA_ADDRESS"]) for a in fake.machine_addresses}
    assert kept >= {(i.index, a.address) for i in snapshot.interfaces for a in i.addresses}


def test_restore_tolerates_what_exists_already():
    fake = FakeNetlink(fail={"add route default/0": errno.EEXIST, "add 2001:db8:1::1/64 to 3": errno.EEXIST})
    snapshot = netif.take_down(fake.connect)
    netif.restore(snapshot, fake.connect)  # no error: EEXIST is what we wanted
    assert "add route 172.16.0.0/12" in fake.requests


def test_restore_goes_on_past_failures_and_names_the_first():
    fake = FakeNetlink(fail={"add 2001:db8:1::1/64 to 3": errno.EADDRNOTAVAIL,
                             "add route 172.16.0.0/12": errno.ENETUNREACH,
                             "add route 2001:db8:9::/48": 0})
    snapshot = netif.take_down(fake.connect)
    with pytest.raises(NetworkError) as failed:
        netif.restore(snapshot, fake.connect)
    assert str(failed.value) == ("network not fully restored: cannot add 2001:db8:1::1/64 to dummy0:"
                                 " Cannot assign requested address (and 2 more)")
    assert fake.requests[-3:] == ["add route 10.99.0.0/16", "add route 2001:db8:9::/48", "close"]


def test_restore_skips_the_routes_of_a_link_that_stays_down():
    fake = FakeNetlink(fail={"up veth0": errno.ENODEV})
    snapshot = netif.take_down(fake.connect)
    fake.requests.clear()
    with pytest.raises(NetworkError, match=r"^network not fully restored: cannot take veth0 up: No such device$"):
        netif.restore(snapshot, fake.connect)
    routes = [r for r in fake.requests if r.startswith("add route")]
    assert routes == ["add route 203.0.113.0/24", "add route default/0"]  # none through veth0 (#6)
    assert "add 2001:db8:2::1/64 to 6" in fake.requests  # addresses are still tried


def test_restore_reports_interfaces_that_vanished_during_the_jump():
    fake = FakeNetlink()
    snapshot = netif.take_down(fake.connect)
    fake.machine_links = [rec for rec in fake.machine_links if rec["attrs"]["IFLA_IFNAME"] != "veth1"]
    with pytest.raises(NetworkError, match=r"^network not fully restored: veth1 \(index 5\) is gone$"):
        netif.restore(snapshot, fake.connect)
    assert "up veth0" in fake.requests


def test_restore_fails_in_one_line_when_the_dump_fails():
    fake = FakeNetlink()
    snapshot = netif.take_down(fake.connect)
    fake.fail["addresses"] = errno.ENOBUFS
    with pytest.raises(NetworkError, match=r"^cannot list addresses: No buffer space available$"):
        netif.restore(snapshot, fake.connect)
    assert fake.requests[-1] == "close"


def test_host_actions_use_the_rtnetlink_adapter(monkeypatch, tmp_path):
    """LinuxKernel and ShimKernel (HostActions) open kexec_py.rtnetlink.Rtnetlink when an
    interface other than lo is up, and none when only lo is."""
    from kexec_py import rtnetlink
    from kexec_py.kernel import HostActions

    fake = FakeNetlink()
    monkeypatch.setattr(rtnetlink, "Rtnetlink", fake.connect)
    net = tmp_path / "sys" / "class" / "net"
    for name, flags in (("lo", 0x9), ("eth0", 0x1003)):
        (net / name).mkdir(parents=True)
        (net / name / "flags").write_text(f"{flags:#x}\n")
    host = HostActions(str(tmp_path))
    saved = host.interfaces_down()
    host.interfaces_restore(saved)
    assert saved.names() == ["eth0", "dummy0", "veth1", "veth0"] and fake.requests.count("open") == 2
    (net / "eth0" / "flags").write_text("0x1002\n")
    fake.requests.clear()
    assert host.interfaces_down() is None and fake.requests == []


# --- kexec -e: the sequence, with a recording fake kernel --------------------------------------

class NetworkFake(FakeKernel):
    """FakeKernel plus the network half of the kernel interface."""

    def __init__(self, down_error=None, restore_error=None, **kwargs):
        super().__init__(**kwargs)
        self.down_error, self.restore_error = down_error, restore_error
        self.restored = []

    def interfaces_down(self):
        self._call("interfaces_down")
        if self.down_error:
            raise netif.NetworkError(self.down_error)
        return netif.take_snapshot(LINKS, ADDRESSES, ROUTES)

    def interfaces_restore(self, saved):
        self._call("interfaces_restore")
        self.restored.append(saved)
        if self.restore_error:
            raise netif.NetworkError(self.restore_error)


@pytest.mark.parametrize("argv, calls", [
    (["-e"], ["kexec_loaded", "sync", "interfaces_down", "reboot_kexec", "interfaces_restore"]),
    (["-e", "-y"], ["kexec_loaded", "interfaces_down", "reboot_kexec", "interfaces_restore"]),
    (["-e", "-x"], ["kexec_loaded", "sync", "reboot_kexec"]),
    (["-e", "-x", "-y"], ["kexec_loaded", "reboot_kexec"]),
])
def test_exec_sequence(run_cli, argv, calls):
    kernel = NetworkFake(loaded=True)
    result = run_cli(argv, kernel)
    assert (result.code, kernel.calls, result.err) == (0, calls, "")
    if "-x" not in argv:
        assert kernel.restored[0].names() == ["eth0", "dummy0", "veth1", "veth0"]


def test_failed_jump_restores_the_network(run_cli):
    kernel = NetworkFake(loaded=True, fail={"reboot_kexec": errno.EBUSY})
    result = run_cli(["-e"], kernel)
    assert kernel.calls[-2:] == ["reboot_kexec", "interfaces_restore"]
    assert (result.code, result.err) == (255, "kexec: reboot_kexec failed: Device or resource busy\n")


def test_failed_jump_and_failed_restore_say_both_on_one_line(run_cli):
    kernel = NetworkFake(loaded=True, fail={"reboot_kexec": errno.EBUSY},
                         restore_error="network not fully restored: cannot take eth0 up: No such device")
    result = run_cli(["-e"], kernel)
    assert result.code == 255 and result.err.count("\n") == 1
    assert result.err == ("kexec: reboot_kexec failed: Device or resource busy;"
                          " network not fully restored: cannot take eth0 up: No such device\n")


def test_ifdown_failure_means_no_jump(run_cli):
    kernel = NetworkFake(loaded=True, down_error="cannot take eth0 down: Operation not permitted")
    result = run_cli(["-e"], kernel)
    assert kernel.calls == ["kexec_loaded", "sync", "interfaces_down"]
    assert (result.code, result.err) == (255, "kexec: cannot take eth0 down: Operation not permitted\n")


def test_restore_failure_after_a_return_exits_255(run_cli):
    kernel = NetworkFake(loaded=True, restore_error="network not fully restored: veth1 (index 5) is gone")
    result = run_cli(["-e"], kernel)
    assert kernel.calls[-1] == "interfaces_restore"
    assert (result.code, result.err) == (255, "kexec: network not fully restored: veth1 (index 5) is gone\n")


def test_interrupted_jump_still_restores(run_cli):
    class Interrupted(NetworkFake):
        def reboot_kexec(self):
            self._call("reboot_kexec")
            raise KeyboardInterrupt

    kernel = Interrupted(loaded=True)
    assert run_cli(["-e"], kernel).code == 130
    assert kernel.calls[-1] == "interfaces_restore"


def test_debug_lists_what_goes_down(run_cli):
    kernel = NetworkFake(loaded=True)
    result = run_cli(["-d", "-e"], kernel)
    assert result.code == 0
    assert result.err.splitlines()[0] == "ifdown: eth0 (index 2): 10.0.2.15/24, 10.0.2.16/24"


def test_force_takes_the_network_down_too(run_cli, tiny_elf32):
    from unit_support import HOST_TREE

    kernel = NetworkFake()
    argv = ["--arch", "i386", "--machine-root", HOST_TREE, "-f", "--args-none", tiny_elf32]
    assert run_cli(argv, kernel).code == 0
    assert kernel.calls == ["kexec_load", "kexec_loaded", "sync", "interfaces_down", "reboot_kexec",
                            "interfaces_restore"]


# --- start-up cost: pyroute2 only when interfaces must go down ---------------------------------

PROBE = """
import sys
import kexec_py.kernel  # the real kernel interface module, imported as `kexec -e` does
from kexec_py import cli

class Kernel:  # stands in for LinuxKernel's three calls that would act
    def kexec_loaded(self, crash=False): return True
    def sync(self): pass
    def reboot_kexec(self): pass

code = cli.main(sys.argv[1:], kernel_factory=lambda args: Kernel())
print(code, "pyroute2" in sys.modules, "kexec_py.netif" in sys.modules, "kexec_py.rtnetlink" in sys.modules)
"""


def test_no_ifdown_exec_never_imports_pyroute2():
    env = dict(os.environ, PYTHONPATH=REPO)
    out = subprocess.run([sys.executable, "-c", PROBE, "-x", "-e"], env=env, cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    assert out.split() == ["0", "False", "False", "False"]


def test_netif_planning_does_not_import_pyroute2():
    code = "import sys, kexec_py.netif as n; n.take_snapshot([], [], []); print('pyroute2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=REPO), cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_kernel_error_type_is_kept_for_jump_failures():
    assert issubclass(netif.NetworkError, netif.KexecError) and not issubclass(netif.NetworkError, KernelError)


@pytest.mark.parametrize("text, names, shown", [
    ("default via 10.0.2.2 dev #2", {2: "eth0"}, "default via 10.0.2.2 dev eth0"),
    ("10.0.0.0/8 nexthop dev #1 nexthop dev #10", {1: "eth1", 10: "eth10"}, "10.0.0.0/8 nexthop dev eth1 nexthop dev eth10"),
    ("default dev #7", {2: "eth0"}, "default dev #7"),
])
def test_route_text_names_interfaces(text, names, shown):
    assert netif._with_names(text, names) == shown


def _sysfs_net(tmp_path, flags_by_name):
    for name, flags in flags_by_name.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "flags").write_text(f"{flags:#x}\n")
    return str(tmp_path)


@pytest.mark.parametrize("interfaces, up", [
    ({"lo": 0x9}, False),                          # loopback only
    ({"lo": 0x9, "sit0": 0x80, "dum1": 0x82}, False),  # others exist but are down
    ({"lo": 0x9, "dum0": 0x1083}, True),           # one up
    ({"lo": 0x9, "veth1": 0x1003}, True),
])
def test_any_interface_up_reads_sysfs_flags(tmp_path, interfaces, up):
    assert any_interface_up(_sysfs_net(tmp_path, interfaces)) is up


def test_any_interface_up_asks_rtnetlink_without_sysfs(tmp_path):
    assert any_interface_up(str(tmp_path / "missing")) is True
