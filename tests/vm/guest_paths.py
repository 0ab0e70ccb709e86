"""Where things are inside the test guest."""

PAYLOADS = "/usr/lib/kexec-py/i386"
PHY_MODE = f"{PAYLOADS}/phy_mode"
ENTRY_REPORT = f"{PAYLOADS}/entry_report"


def payload(arch: str, name: str) -> str:
    """The .deb's example payload `name` for an `arch` kernel."""
    return f"/usr/lib/kexec-py/{arch}/{name}"
KEXEC_TOOLS = "/usr/sbin/kexec-tools"  # Debian's kexec-tools, moved aside for side-by-side runs
NOBODY = "setpriv --reuid=65534 --regid=65534 --clear-groups"
