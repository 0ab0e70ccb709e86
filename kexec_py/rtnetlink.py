"""rtnetlink through pyroute2: the small adapter kexec_py.netif talks to.

It does three things and decides nothing: dumps links, addresses and routes as
plain records (`record()`: header fields, and attributes by NLA name), makes the
three kinds of request (a link up or down, add an address, add a route), and turns
whatever pyroute2 raises into NetlinkFailure (the reason in words, the errno).
What to take down, what to bring back, which failures to tolerate and what to say
is kexec_py.netif's, tested with a recording fake of this class.

pyroute2 is imported when an Rtnetlink is made, never at import: `kexec -e` with
only lo up (or -x) does not load it.
"""

from __future__ import annotations

import os
from socket import AF_INET, AF_INET6
from typing import Any, Callable, Iterable, TypeVar

from kexec_py.netif import NetlinkFailure, NetworkError, Record

T = TypeVar("T")

# The attributes planning reads; the rest of each message is not copied.
LINK_NLAS = frozenset({"IFLA_IFNAME"})
ADDRESS_NLAS = frozenset(
    {"IFA_ADDRESS", "IFA_LOCAL", "IFA_BROADCAST", "IFA_LABEL", "IFA_FLAGS", "IFA_CACHEINFO", "IFA_PROTO"}
)
ROUTE_NLAS = frozenset(
    {"RTA_TABLE", "RTA_DST", "RTA_OIF", "RTA_GATEWAY", "RTA_PREFSRC", "RTA_PRIORITY", "RTA_METRICS",
     "RTA_MULTIPATH", "RTA_NH_ID", "RTA_EXPIRES"}
)


def record(msg: Any, wanted: frozenset[str] | None = None) -> dict[str, object]:
    """A pyroute2 message as plain data: header fields, and attrs by NLA name
    (all, or those in wanted; nested messages such as IFA_CACHEINFO or
    RTA_MULTIPATH entries are recorded too)."""
    rec: dict[str, object] = {name: msg[name] for name, _ in msg.fields if not name.startswith("__")}
    attrs: dict[str, object] = {}
    try:
        nlas = msg["attrs"]
    except (KeyError, TypeError):
        nlas = ()
    for nla in nlas or ():
        name, value = nla[0], nla[1]
        if name != "UNKNOWN" and (wanted is None or name in wanted):
            attrs[name] = _plain(value)
    rec["attrs"] = attrs
    return rec


def _plain(value: Any) -> object:
    if hasattr(value, "fields"):
        return record(value)
    if isinstance(value, (list, tuple)) and value and hasattr(value[0], "fields"):
        return [record(v) for v in value]
    return value


def failure(e: BaseException) -> NetlinkFailure:
    """What pyroute2 raised, as NetlinkFailure: NetlinkError carries .code, OSError
    .errno; anything else (pyroute2's own ValueErrors) keeps its text."""
    code = getattr(e, "code", None) or getattr(e, "errno", None)
    if isinstance(code, int) and code > 0:
        return NetlinkFailure(os.strerror(code), code)
    return NetlinkFailure(str(e))


class Rtnetlink:
    """One rtnetlink socket (pyroute2's IPRoute, or ipr for tests of this adapter)."""

    def __init__(self, ipr: Any = None) -> None:
        if ipr is None:
            try:
                from pyroute2 import IPRoute
            except ImportError:
                raise NetworkError(
                    "kexec -e takes network interfaces down with pyroute2, which is not installed"
                    " (install python3-pyroute2 or `pip install pyroute2`, or pass -x)"
                ) from None
            try:
                ipr = IPRoute()
            except OSError as e:
                raise NetworkError(f"cannot open an rtnetlink socket: {failure(e).reason}") from None
        self._ipr = ipr

    def __enter__(self) -> Rtnetlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self._ipr.close()

    def _call(self, call: Callable[..., T], *args: object, **kwargs: object) -> T:
        try:
            return call(*args, **kwargs)
        except Exception as e:  # pyroute2's NetlinkError, OSError, its own ValueErrors
            raise failure(e) from e

    def _dump(self, call: Callable[..., Iterable[Any]], wanted: frozenset[str], **kwargs: object) -> list[Record]:
        # the records are made inside _call: pyroute2 may hand back a generator
        return self._call(lambda: [record(m, wanted) for m in call(**kwargs)])

    def links(self) -> list[Record]:
        return self._dump(self._ipr.get_links, LINK_NLAS)

    def addresses(self) -> list[Record]:
        return self._dump(self._ipr.get_addr, ADDRESS_NLAS)

    def routes(self) -> list[Record]:
        return [rec for family in (AF_INET, AF_INET6) for rec in self._dump(self._ipr.get_routes, ROUTE_NLAS,
                                                                             family=family)]

    def set_link(self, index: int, state: str) -> None:
        self._call(self._ipr.link, "set", index=index, state=state)

    def add_address(self, request: dict[str, object]) -> None:
        self._call(self._ipr.addr, "add", **request)

    def add_route(self, request: dict[str, object]) -> None:
        self._call(self._ipr.route, "add", **request)
