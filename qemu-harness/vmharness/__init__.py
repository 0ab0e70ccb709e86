"""Build and boot QEMU guests that prove kexec-py against kernels we build."""
