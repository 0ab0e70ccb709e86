"""Network interfaces around `kexec -e`: down before the jump, back after it.

kexec-tools takes every interface but lo down before the jump (ifdown.c) and
never brings them back: right when the jump boots another kernel, wrong when a
preserve-context image returns to this one. kexec-py records what was up, takes
it down, and after the return (or a failed jump) brings back exactly that: the
links, their addresses and the main-table routes through them.

This module is the interface model, and never talks to the kernel itself:
- values (Address, Route, Interface, Snapshot, RestorePlan) and pure planning
  over records, plain dicts shaped like pyroute2's messages:
  `take_snapshot()` decides what goes down and what must come back,
  `plan_restore()` compares a snapshot with the state after the return;
- `take_down()` and `restore()`, the procedures around the jump (the order of
  requests, the rollback when an interface will not go down, going on past
  failures, the one-line errors), written against `Netlink`, the seam: a few
  dumps and requests that raise NetlinkFailure.
kexec_py.rtnetlink is that seam over pyroute2 (imported only there, and only when
an interface other than lo is up: `kexec -x -e` never imports it); tests pass a
recording fake instead, and need no root and no netlink.

What the kernel does by itself, and so is not restored: IPv4 addresses survive
a link going down; IPv6 addresses do not (unless keep_addr_on_down), but the
kernel makes the link-local one again on up, and SLAAC/privacy addresses and
RA routes come back with the next router advertisement; prefix routes
(proto kernel) are made from the addresses. Re-adding what already exists is
not an error (EEXIST is tolerated), so a racing kernel or daemon does no harm.
"""

from __future__ import annotations

import errno
import ipaddress
import re
from socket import AF_INET, AF_INET6
from typing import Any, Callable, Iterable, Mapping, Protocol, TypeVar

from kexec_py.errors import KexecError
from kexec_py.value import frozen

# include/uapi/linux/if.h
IFF_UP = 0x1
IFF_LOOPBACK = 0x8

# include/uapi/linux/if_addr.h
IFA_F_TEMPORARY = 0x01  # IPv6 privacy address (the same bit is IFA_F_SECONDARY for IPv4)
IFA_F_NODAD = 0x02
IFA_F_OPTIMISTIC = 0x04
IFA_F_DADFAILED = 0x08
IFA_F_HOMEADDRESS = 0x10
IFA_F_MANAGETEMPADDR = 0x100
IFA_F_NOPREFIXROUTE = 0x200
IFA_F_MCAUTOJOIN = 0x400
# The flags `ip address add` may set; the others are state the kernel keeps.
IFA_SETTABLE_FLAGS = (
    IFA_F_NODAD | IFA_F_OPTIMISTIC | IFA_F_HOMEADDRESS | IFA_F_MANAGETEMPADDR
    | IFA_F_NOPREFIXROUTE | IFA_F_MCAUTOJOIN
)
INFINITY_LIFE_TIME = 0xFFFFFFFF
# IFA_PROTO (Linux >= 6.1): who made the address. Anything but UNSPEC is the kernel.
IFAPROT_UNSPEC = 0
IFAPROT_MADE_BY = {
    1: "loopback address made by the kernel",
    2: "made by the kernel from a router advertisement",
    3: "link-local address made by the kernel",
}

# include/uapi/linux/rtnetlink.h
RT_TABLE_MAIN = 254
RTN_UNICAST = 1
RTPROT_KERNEL_MADE = {1: "redirect", 2: "kernel", 9: "ra"}  # the kernel recreates these itself

LINK_LOCAL_V6 = ipaddress.ip_network("fe80::/10")

Record = Mapping[str, Any]  # {"<header field>": value, ..., "attrs": {"<NLA name>": value}}


class NetworkError(KexecError):
    """A netlink request around kexec -e failed (one line: interface, request, reason)."""


class NetlinkFailure(NetworkError):
    """What a Netlink request raises when the kernel (or pyroute2) refuses it: the
    reason in words and the errno, if there is one. take_down() and restore() turn
    it into a NetworkError that names the request."""

    def __init__(self, reason: str, errno: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.errno = errno


# --- values --------------------------------------------------------------------------------------


@frozen
class Address:
    """One address of an interface, with what `ip address add` needs to make it again."""

    index: int
    family: int
    address: str  # IFA_ADDRESS: the peer on point-to-point links
    prefixlen: int
    local: str | None = None  # IFA_LOCAL (IPv4): the interface's own address
    broadcast: str | None = None
    label: str | None = None  # IPv4 only
    scope: int = 0
    flags: int = 0  # the settable IFA_F_* bits
    preferred: int = INFINITY_LIFE_TIME  # remaining lifetimes in seconds
    valid: int = INFINITY_LIFE_TIME

    @property
    def own(self) -> str:
        return self.local or self.address

    def key(self) -> tuple[int, int, str, int]:
        return (self.index, self.family, self.own, self.prefixlen)

    def __str__(self) -> str:
        if self.local and self.local != self.address:
            return f"{self.local} peer {self.address}/{self.prefixlen}"
        return f"{self.address}/{self.prefixlen}"

    def add_request(self) -> dict[str, object]:
        """Keyword arguments of pyroute2's IPRoute.addr('add', ...)."""
        request: dict[str, object] = {
            "index": self.index,
            "family": self.family,
            "address": self.address,
            "prefixlen": self.prefixlen,
            "scope": self.scope,
        }
        for name in ("local", "broadcast", "label"):
            if getattr(self, name):
                request[name] = getattr(self, name)
        if self.flags:
            request["flags"] = self.flags
        if self.valid != INFINITY_LIFE_TIME:
            # pyroute2 0.7 reads the lifetimes from cacheinfo, 0.8+ from *_lft: give both.
            request["preferred_lft"] = self.preferred
            request["valid_lft"] = self.valid
            request["cacheinfo"] = {"preferred": self.preferred, "valid": self.valid}
        return request


@frozen
class NextHop:
    oif: int
    gateway: str | None = None
    hops: int = 0
    flags: int = 0


@frozen
class Route:
    """A main-table route through at least one interface that goes down."""

    family: int
    dst: str | None  # None: default
    dst_len: int
    oif: int | None = None
    gateway: str | None = None
    prefsrc: str | None = None
    priority: int | None = None  # the metric
    proto: int = 0
    scope: int = 0
    type: int = RTN_UNICAST
    flags: int = 0  # rtm_flags, e.g. RTNH_F_ONLINK
    tos: int = 0
    metrics: tuple[tuple[str, int], ...] = ()  # (("RTAX_MTU", 1400), ...)
    multipath: tuple[NextHop, ...] = ()

    @property
    def interfaces(self) -> frozenset[int]:
        return frozenset(([self.oif] if self.oif else []) + [nh.oif for nh in self.multipath])

    @property
    def via_gateway(self) -> bool:
        return bool(self.gateway or any(nh.gateway for nh in self.multipath))

    def __str__(self) -> str:
        text = f"{self.dst}/{self.dst_len}" if self.dst else "default"
        if self.gateway:
            text += f" via {self.gateway}"
        for nh in self.multipath:
            text += f" nexthop via {nh.gateway} dev #{nh.oif}" if nh.gateway else f" nexthop dev #{nh.oif}"
        if self.oif:
            text += f" dev #{self.oif}"
        return text

    def add_request(self) -> dict[str, object]:
        """Keyword arguments of pyroute2's IPRoute.route('add', ...)."""
        request: dict[str, object] = {
            "family": self.family,
            "dst_len": self.dst_len,
            "table": RT_TABLE_MAIN,
            "proto": self.proto,
            "scope": self.scope,
            "type": self.type,
            "tos": self.tos,
        }
        if self.flags:
            request["flags"] = self.flags
        for name in ("dst", "oif", "gateway", "prefsrc", "priority"):
            if getattr(self, name) is not None:
                request[name] = getattr(self, name)
        if self.metrics:
            request["metrics"] = dict(self.metrics)
        if self.multipath:
            request["multipath"] = [
                {"oif": nh.oif, "hops": nh.hops, "flags": nh.flags, **({"gateway": nh.gateway} if nh.gateway else {})}
                for nh in self.multipath
            ]
        return request


@frozen
class Interface:
    index: int
    name: str
    flags: int
    addresses: tuple[Address, ...] = ()  # only those to restore

    def __str__(self) -> str:
        return f"{self.name} (index {self.index})"


@frozen
class Snapshot:
    """What was up before the jump, and what must come back after it."""

    interfaces: tuple[Interface, ...] = ()  # by ascending index
    routes: tuple[Route, ...] = ()  # in dump order
    skipped: tuple[tuple[str, str], ...] = ()  # (what, why) the kernel or a daemon makes again, for --debug

    def names(self) -> list[str]:
        return [i.name for i in self.interfaces]

    def describe(self) -> str:
        """For --debug: what goes down and what will be restored."""
        if not self.interfaces:
            return "ifdown: no interface but lo is up"
        lines = []
        for iface in self.interfaces:
            addresses = ", ".join(str(a) for a in iface.addresses) or "no address to restore"
            lines.append(f"ifdown: {iface}: {addresses}")
        names = {i.index: i.name for i in self.interfaces}
        for route in self.routes:
            lines.append("ifdown: route " + _with_names(str(route), names))
        for what, why in self.skipped:
            lines.append(f"ifdown: not restored: {what} ({why})")
        return "\n".join(lines)


@frozen
class RestorePlan:
    """The requests that bring a snapshot back, in order."""

    links_up: tuple[Interface, ...] = ()  # to set up, ascending index (lower devices first)
    addresses: tuple[Address, ...] = ()  # missing now
    routes: tuple[Route, ...] = ()  # on-link routes before routes via a gateway
    problems: tuple[str, ...] = ()  # what cannot be restored


def _with_names(text: str, names: Mapping[int, str]) -> str:
    """Route text with "dev #INDEX" turned into interface names where known."""
    return re.sub(r"dev #(\d+)", lambda m: f"dev {names.get(int(m.group(1)), m.group(0)[4:])}", text)


# --- pure planning -------------------------------------------------------------------------------


def _attrs(rec: Record) -> Mapping[str, Any]:
    return rec.get("attrs") or {}


def is_candidate(link: Record) -> bool:
    """Up (administratively) and not a loopback: what kexec-tools' ifdown takes down."""
    name = _attrs(link).get("IFLA_IFNAME")
    return bool(link["flags"] & IFF_UP) and not link["flags"] & IFF_LOOPBACK and name != "lo"


def address_skip_reason(rec: Record) -> str | None:
    """Why an address needs no restoring (the kernel makes it again), or None."""
    attrs = _attrs(rec)
    if rec["family"] != AF_INET6:
        return None  # IPv4 addresses survive the link going down; restoring is a no-op then
    proto = attrs.get("IFA_PROTO", IFAPROT_UNSPEC)
    if isinstance(proto, int) and proto != IFAPROT_UNSPEC:
        return IFAPROT_MADE_BY.get(proto, f"made by the kernel (IFA_PROTO {proto})")
    flags = attrs.get("IFA_FLAGS", rec.get("flags", 0))
    if flags & IFA_F_TEMPORARY:
        return "privacy address made by the kernel"
    if flags & IFA_F_DADFAILED:
        return "duplicate address detection failed"
    if "IFA_PROTO" not in attrs and ipaddress.ip_address(attrs["IFA_ADDRESS"]) in LINK_LOCAL_V6:
        return "link-local, made by the kernel on up"
    return None


def to_address(rec: Record) -> Address:
    attrs = _attrs(rec)
    cache = attrs.get("IFA_CACHEINFO") or {}
    family = rec["family"]
    return Address(
        index=rec["index"],
        family=family,
        address=attrs.get("IFA_ADDRESS") or attrs["IFA_LOCAL"],
        prefixlen=rec["prefixlen"],
        local=attrs.get("IFA_LOCAL") if family == AF_INET else None,
        broadcast=attrs.get("IFA_BROADCAST"),
        label=attrs.get("IFA_LABEL") if family == AF_INET else None,
        scope=rec.get("scope", 0),
        flags=attrs.get("IFA_FLAGS", rec.get("flags", 0)) & IFA_SETTABLE_FLAGS,
        preferred=cache.get("ifa_preferred", INFINITY_LIFE_TIME),
        valid=cache.get("ifa_valid", INFINITY_LIFE_TIME),
    )


def route_table(rec: Record) -> int:
    return _attrs(rec).get("RTA_TABLE", rec.get("table", 0))


def route_interfaces(rec: Record) -> set[int]:
    attrs = _attrs(rec)
    used = {attrs["RTA_OIF"]} if attrs.get("RTA_OIF") else set()
    for nh in attrs.get("RTA_MULTIPATH") or ():
        used.add(nh.get("oif") or nh.get("ifindex"))
    return used


def route_skip_reason(rec: Record) -> str | None:
    """Why a main-table route through a downed interface needs no restoring, or None."""
    attrs = _attrs(rec)
    if rec.get("proto") in RTPROT_KERNEL_MADE:
        return f"proto {RTPROT_KERNEL_MADE[rec['proto']]}: the kernel makes it again"
    if rec.get("type", RTN_UNICAST) != RTN_UNICAST:
        return f"route type {rec.get('type')}, not unicast"
    if "RTA_NH_ID" in attrs:
        return "uses a nexthop object (ip nexthop), not restored by kexec-py"
    if "RTA_EXPIRES" in attrs:
        return "expires: learned, not configured"
    return None


def to_route(rec: Record) -> Route:
    attrs = _attrs(rec)
    metrics = attrs.get("RTA_METRICS") or {}
    if "attrs" in metrics:
        metrics = metrics["attrs"]
    return Route(
        family=rec["family"],
        dst=attrs.get("RTA_DST"),
        dst_len=rec.get("dst_len", 0),
        oif=attrs.get("RTA_OIF"),
        gateway=attrs.get("RTA_GATEWAY"),
        prefsrc=attrs.get("RTA_PREFSRC"),
        priority=attrs.get("RTA_PRIORITY"),
        proto=rec.get("proto", 0),
        scope=rec.get("scope", 0),
        type=rec.get("type", RTN_UNICAST),
        flags=rec.get("flags", 0),
        tos=rec.get("tos", 0),
        metrics=tuple(sorted(metrics.items())),
        multipath=tuple(
            NextHop(
                oif=nh.get("oif") or nh.get("ifindex"),
                gateway=_attrs(nh).get("RTA_GATEWAY"),
                hops=nh.get("hops", 0),
                flags=nh.get("flags", 0),
            )
            for nh in attrs.get("RTA_MULTIPATH") or ()
        ),
    )


def take_snapshot(links: Iterable[Record], addresses: Iterable[Record], routes: Iterable[Record]) -> Snapshot:
    """What goes down (every interface but loopbacks that is up) and what must come back."""
    down = sorted((link for link in links if is_candidate(link)), key=lambda link: link["index"])
    names = {link["index"]: _attrs(link).get("IFLA_IFNAME", f"#{link['index']}") for link in down}
    kept: dict[int, list[Address]] = {index: [] for index in names}
    skipped = []
    for rec in addresses:
        if rec["index"] not in kept:
            continue
        address = to_address(rec)
        why = address_skip_reason(rec)
        if why:
            skipped.append((f"{names[rec['index']]} {address}", why))
        else:
            kept[rec["index"]].append(address)
    kept_routes = []
    for rec in routes:
        if route_table(rec) != RT_TABLE_MAIN or not route_interfaces(rec) & names.keys():
            continue
        route = to_route(rec)
        why = route_skip_reason(rec)
        if why:
            skipped.append((_with_names(f"route {route}", names), why))
        else:
            kept_routes.append(route)
    interfaces = tuple(
        Interface(link["index"], names[link["index"]], link["flags"], tuple(kept[link["index"]])) for link in down
    )
    return Snapshot(interfaces, tuple(kept_routes), tuple(skipped))


def down_order(snapshot: Snapshot) -> list[Interface]:
    """Highest index first: upper devices (VLANs, bridges on top) before the devices below them."""
    return sorted(snapshot.interfaces, key=lambda i: i.index, reverse=True)


def plan_restore(snapshot: Snapshot, links_now: Iterable[Record], addresses_now: Iterable[Record]) -> RestorePlan:
    """The requests that make the snapshot true again, given the state after the return."""
    current = {link["index"]: link for link in links_now}
    problems = []
    present = []
    links_up = []
    for iface in snapshot.interfaces:  # ascending index: lower devices first
        link = current.get(iface.index)
        name = _attrs(link).get("IFLA_IFNAME") if link else None
        if link is None:
            problems.append(f"{iface} is gone")
            continue
        if name != iface.name:
            problems.append(f"{iface} is now called {name}")
            continue
        present.append(iface)
        if not link["flags"] & IFF_UP:
            links_up.append(iface)
    have = {to_address(rec).key() for rec in addresses_now}
    addresses = [a for iface in present for a in iface.addresses if a.key() not in have]
    usable = {iface.index for iface in present}
    routes = [r for r in snapshot.routes if r.interfaces <= usable]
    problems += [f"route {r}: its interface is gone" for r in snapshot.routes if not r.interfaces <= usable]
    routes.sort(key=lambda r: r.via_gateway)  # stable: the gateway must be on a link that is routed
    return RestorePlan(tuple(links_up), tuple(addresses), tuple(routes), tuple(problems))


# --- the procedures, over the netlink seam --------------------------------------------------------


class Netlink(Protocol):
    """The rtnetlink requests take_down() and restore() make: kexec_py.rtnetlink.Rtnetlink
    over pyroute2, or a recording fake in the tests. Dumps return records; a request the
    kernel refuses raises NetlinkFailure. Used as a context manager (closes the socket)."""

    def __enter__(self) -> Netlink: ...

    def __exit__(self, *exc: object) -> None: ...

    def links(self) -> list[Record]: ...

    def addresses(self) -> list[Record]: ...

    def routes(self) -> list[Record]: ...

    def set_link(self, index: int, state: str) -> None: ...  # state "up" or "down"

    def add_address(self, request: dict[str, object]) -> None: ...  # Address.add_request()

    def add_route(self, request: dict[str, object]) -> None: ...  # Route.add_request()


Connect = Callable[[], Netlink]  # opens a socket: kexec_py.rtnetlink.Rtnetlink
T = TypeVar("T")


def _ask(what: str, call: Callable[..., T], *args: object) -> T:
    """call(*args); a refusal becomes a NetworkError naming the request: "what: reason"."""
    try:
        return call(*args)
    except NetlinkFailure as e:
        raise NetworkError(f"{what}: {e.reason}") from e


def _set_link(netlink: Netlink, iface: Interface, state: str) -> None:
    _ask(f"cannot take {iface.name} {state}", netlink.set_link, iface.index, state)


def _add(netlink_call: Callable[[dict[str, object]], None], what: str, request: dict[str, object]) -> None:
    """Add an address or route; one that exists already (EEXIST) is what we wanted."""
    try:
        netlink_call(request)
    except NetlinkFailure as e:
        if e.errno != errno.EEXIST:
            raise NetworkError(f"cannot add {what}: {e.reason}") from e


def take_down(connect: Connect) -> Snapshot:
    """Record the state, then take every recorded interface down. If one cannot
    be taken down, bring back those that were and raise: the jump must not happen
    with the network half down."""
    with connect() as netlink:
        snapshot = take_snapshot(
            _ask("cannot list network interfaces", netlink.links),
            _ask("cannot list addresses", netlink.addresses),
            _ask("cannot list routes", netlink.routes),
        )
        done = []
        try:
            for iface in down_order(snapshot):
                _set_link(netlink, iface, "down")
                done.append(iface)
        except NetworkError as e:
            if done:
                try:
                    _restore(netlink, rollback(snapshot, done))
                except NetworkError as again:
                    raise NetworkError(
                        f"{e}; bringing back {', '.join(i.name for i in done)} failed too: {again}"
                    ) from e
            raise
    return snapshot


def rollback(snapshot: Snapshot, done: Iterable[Interface]) -> Snapshot:
    """What to bring back when taking the network down stopped half way: the interfaces
    already down, and the routes through them only (the others never went away)."""
    indexes = {i.index for i in done}
    return Snapshot(
        tuple(i for i in snapshot.interfaces if i.index in indexes),
        tuple(r for r in snapshot.routes if r.interfaces <= indexes),
    )


def restore(snapshot: Snapshot, connect: Connect) -> None:
    """Bring back what take_down() took down: links, then addresses, then routes.
    Goes on past failures and raises one NetworkError naming the first (and counting the rest).
    Opens no socket when nothing was taken down."""
    if not snapshot.interfaces:
        return
    with connect() as netlink:
        _restore(netlink, snapshot)


def _restore(netlink: Netlink, snapshot: Snapshot) -> None:
    plan = plan_restore(
        snapshot,
        _ask("cannot list network interfaces", netlink.links),
        _ask("cannot list addresses", netlink.addresses),
    )
    problems = list(plan.problems)
    names = {i.index: i.name for i in snapshot.interfaces}
    failed_links = set()
    for iface in plan.links_up:
        try:
            _set_link(netlink, iface, "up")
        except NetworkError as e:
            problems.append(str(e))
            failed_links.add(iface.index)
    for address in plan.addresses:
        try:
            _add(netlink.add_address, f"{address} to {names[address.index]}", address.add_request())
        except NetworkError as e:
            problems.append(str(e))
    for route in plan.routes:
        if route.interfaces & failed_links:
            continue  # already reported with its link
        try:
            _add(netlink.add_route, "route " + _with_names(str(route), names), route.add_request())
        except NetworkError as e:
            problems.append(str(e))
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise NetworkError(f"network not fully restored: {problems[0]}{more}")
