"""kexec-py: a kexec(8) built around kexec jump (KEXEC_PRESERVE_CONTEXT)."""

__version__ = "0.1.0"


def call(payload: str, params=None, **options) -> bytes:
    """Run a physical-mode payload once and return what it reported (`kexec --call`);
    see kexec_py.calling.call for the options. Needs root."""
    from kexec_py.calling import call as _call

    return _call(payload, params, **options)
