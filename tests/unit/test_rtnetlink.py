"""kexec_py.rtnetlink, the adapter between the interface model and pyroute2: its
dumps as plain records, the requests it forwards, and how whatever pyroute2 raises
becomes NetlinkFailure (reason and errno). Through a fake IPRoute; the real one is
used only to encode and parse messages, never to open a socket."""

import errno
import sys
from socket import AF_INET, AF_INET6

import pytest

from kexec_py import netif, rtnetlink
from kexec_py.netif import Address, NetlinkFailure, NetworkError, NextHop

PERMANENT, NODAD = 0x80, 0x02
MAIN, STATIC = 254, 4


# --- record(): pyroute2's parsed messages as plain data --------------------------------------

def parsed(msg_class, fields, attrs):
    msg = msg_class()
    for key, value in fields.items():
        msg[key] = value
    msg["attrs"] = attrs
    msg.encode()
    back = msg_class(msg.data)
    back.decode()
    return back


def test_record_of_parsed_pyroute2_messages():
    pytest.importorskip("pyroute2")
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
    from pyroute2.netlink.rtnl.rtmsg import rtmsg

    address = rtnetlink.record(parsed(
        ifaddrmsg, {"family": AF_INET6, "prefixlen": 64, "flags": PERMANENT, "scope": 0, "index": 3},
        [["IFA_ADDRESS", "2001:db8:1::1"], ["IFA_FLAGS", PERMANENT | NODAD],
         ["IFA_CACHEINFO", {"ifa_preferred": 100, "ifa_valid": 200, "cstamp": 1, "tstamp": 2}]]),
        rtnetlink.ADDRESS_NLAS)
    assert address["attrs"]["IFA_ADDRESS"] == "2001:db8:1::1"
    assert netif.to_address(address) == Address(3, AF_INET6, "2001:db8:1::1", 64, flags=NODAD, preferred=100, valid=200)

    rt = rtnetlink.record(parsed(
        rtmsg, {"family": AF_INET, "dst_len": 16, "table": MAIN, "proto": STATIC, "scope": 0, "type": 1},
        [["RTA_TABLE", MAIN], ["RTA_DST", "10.99.0.0"],
         ["RTA_MULTIPATH", [{"oif": 2, "hops": 0, "flags": 0, "attrs": [["RTA_GATEWAY", "10.0.2.2"]]},
                            {"oif": 6, "hops": 1, "flags": 0, "attrs": [["RTA_GATEWAY", "198.51.100.2"]]}]]]),
        rtnetlink.ROUTE_NLAS)
    assert netif.to_route(rt).multipath == (NextHop(2, "10.0.2.2", 0, 0), NextHop(6, "198.51.100.2", 1, 0))


# --- failures: one reason in words, and the errno ---------------------------------------------

class FakeNetlinkError(Exception):
    """pyroute2's NetlinkError: the errno in .code."""

    def __init__(self, code):
        super().__init__(code, "netlink says no")
        self.code = code


@pytest.mark.parametrize("raised, reason, err", [
    (FakeNetlinkError(errno.EPERM), "Operation not permitted", errno.EPERM),
    (FakeNetlinkError(errno.EEXIST), "File exists", errno.EEXIST),
    (OSError(errno.ENOBUFS, "No buffer space available"), "No buffer space available", errno.ENOBUFS),
    (ValueError("unknown attribute RTA_FOO"), "unknown attribute RTA_FOO", None),  # pyroute2's own
])
def test_failure(raised, reason, err):
    failure = rtnetlink.failure(raised)
    assert isinstance(failure, NetlinkFailure) and isinstance(failure, NetworkError)
    assert (failure.reason, failure.errno, str(failure)) == (reason, err, reason)


def test_real_netlink_error_is_understood():
    pytest.importorskip("pyroute2")
    from pyroute2.netlink.exceptions import NetlinkError

    assert (rtnetlink.failure(NetlinkError(errno.ENODEV)).errno, rtnetlink.failure(NetlinkError(errno.ENODEV)).reason) \
        == (errno.ENODEV, "No such device")


# --- Rtnetlink over a fake IPRoute --------------------------------------------------------------

class Message:
    """Enough of a pyroute2 message for record(): .fields, [name], ["attrs"]."""

    def __init__(self, fields, attrs):
        self.fields = [(name, None) for name in fields]
        self._values = dict(fields, attrs=attrs)

    def __getitem__(self, name):
        return self._values[name]


class FakeIPRoute:
    def __init__(self, fail=None):
        self.calls, self.fail, self.closed = [], fail or {}, False

    def _record(self, name, *args, **kwargs):
        self.calls.append((name, args, kwargs))
        if name in self.fail:
            raise self.fail[name]

    def get_links(self):
        self._record("get_links")
        return iter([Message({"index": 2, "flags": 0x1003, "__align": 0}, [("IFLA_IFNAME", "eth0"), ("IFLA_MTU", 1500)])])

    def get_addr(self):
        self._record("get_addr")
        return [Message({"index": 2, "family": AF_INET}, [("IFA_ADDRESS", "10.0.2.15"), ("UNKNOWN", 1)])]

    def get_routes(self, family):
        self._record("get_routes", family=family)
        return [Message({"family": family}, [("RTA_TABLE", MAIN), ("RTA_TTL_PROPAGATE", 1)])]

    def link(self, *args, **kwargs):
        self._record("link", *args, **kwargs)

    def addr(self, *args, **kwargs):
        self._record("addr", *args, **kwargs)

    def route(self, *args, **kwargs):
        self._record("route", *args, **kwargs)

    def close(self):
        self.closed = True


def test_dumps_are_records_of_the_attributes_planning_reads():
    ipr = FakeIPRoute()
    with rtnetlink.Rtnetlink(ipr) as nl:
        assert nl.links() == [{"index": 2, "flags": 0x1003, "attrs": {"IFLA_IFNAME": "eth0"}}]
        assert nl.addresses() == [{"index": 2, "family": AF_INET, "attrs": {"IFA_ADDRESS": "10.0.2.15"}}]
        assert nl.routes() == [{"family": AF_INET, "attrs": {"RTA_TABLE": MAIN}},
                               {"family": AF_INET6, "attrs": {"RTA_TABLE": MAIN}}]
    assert ipr.closed


def test_requests_are_forwarded_as_given():
    ipr = FakeIPRoute()
    nl = rtnetlink.Rtnetlink(ipr)
    nl.set_link(3, "down")
    nl.add_address({"index": 3, "family": AF_INET, "address": "192.0.2.1", "prefixlen": 24})
    nl.add_route({"family": AF_INET, "dst_len": 0, "table": MAIN, "gateway": "10.0.2.2"})
    assert ipr.calls == [
        ("link", ("set",), {"index": 3, "state": "down"}),
        ("addr", ("add",), {"index": 3, "family": AF_INET, "address": "192.0.2.1", "prefixlen": 24}),
        ("route", ("add",), {"family": AF_INET, "dst_len": 0, "table": MAIN, "gateway": "10.0.2.2"}),
    ]


@pytest.mark.parametrize("method, args, pyroute2_name", [
    ("links", (), "get_links"), ("addresses", (), "get_addr"), ("routes", (), "get_routes"),
    ("set_link", (3, "up"), "link"), ("add_address", ({},), "addr"), ("add_route", ({},), "route"),
])
def test_every_call_raises_netlink_failure(method, args, pyroute2_name):
    nl = rtnetlink.Rtnetlink(FakeIPRoute(fail={pyroute2_name: FakeNetlinkError(errno.EPERM)}))
    with pytest.raises(NetlinkFailure) as failed:
        getattr(nl, method)(*args)
    assert (failed.value.reason, failed.value.errno) == ("Operation not permitted", errno.EPERM)


def test_without_pyroute2(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyroute2", None)  # import pyroute2 raises ImportError
    with pytest.raises(NetworkError, match=r"^kexec -e takes network interfaces down with pyroute2, which is not"
                                           r" installed \(install python3-pyroute2 .*or pass -x\)$"):
        rtnetlink.Rtnetlink()


def test_socket_refused(monkeypatch):
    pyroute2 = pytest.importorskip("pyroute2")

    def refuse():
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(pyroute2, "IPRoute", refuse)
    with pytest.raises(NetworkError, match=r"^cannot open an rtnetlink socket: Permission denied$"):
        rtnetlink.Rtnetlink()
