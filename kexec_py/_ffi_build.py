"""cffi out-of-line ABI declarations, compiled at build time into
kexec_py/_kexec_ffi.py: at run time only _cffi_backend is imported and no
compiler is needed on the target."""

from cffi import FFI

ffibuilder = FFI()
ffibuilder.cdef(
    """
    struct kexec_segment {        /* include/uapi/linux/kexec.h */
        const void *buf;
        size_t bufsz;
        const void *mem;
        size_t memsz;
    };
    long syscall(long number, ...);
    """
)
ffibuilder.set_source("kexec_py._kexec_ffi", None)

if __name__ == "__main__":
    ffibuilder.compile()
