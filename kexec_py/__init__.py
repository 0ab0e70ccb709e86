"""kexec-py: a kexec(8) built around kexec jump (KEXEC_PRESERVE_CONTEXT)."""

__version__ = "0.1.0"
