"""kexec-py: a kexec(8) built around kexec jump (KEXEC_PRESERVE_CONTEXT)."""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: every kexec command imports this package
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

__version__ = "0.1.0"


def call(payload: str, params: Mapping[str, str] | None = None, **options: Any) -> bytes:
    """Run a physical-mode payload once and return what it reported (`kexec --call`);
    see kexec_py.calling.call for the options. Needs root."""
    from kexec_py.calling import call as _call

    return _call(payload, params, **options)
