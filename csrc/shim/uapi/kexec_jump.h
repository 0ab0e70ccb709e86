/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * /dev/kexec_jump: kexec jump (KEXEC_PRESERVE_CONTEXT) for kernels built
 * without CONFIG_KEXEC_JUMP. The interface mirrors kexec_load(2) and
 * reboot(LINUX_REBOOT_CMD_KEXEC):
 *
 *   KJ_LOAD    entry, up to 16 segments, flags, validated and refused with the
 *              errno kexec_load would give; nr_segments == 0 unloads.
 *   KJ_EXEC    jump to the image and return when it comes back. The caller
 *              must have frozen user space first (SNAPSHOT_FREEZE on
 *              /dev/snapshot opened O_WRONLY), else EBUSY.
 *   KJ_UNLOAD  free the image.
 *   KJ_STATUS  what is loaded.
 *
 * Every field is 64 bits wide (or padded to it) so that 32-bit and 64-bit
 * processes share one layout and the driver needs no compat code.
 */
#ifndef _UAPI_KEXEC_JUMP_H
#define _UAPI_KEXEC_JUMP_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define KJ_DEVICE "/dev/kexec_jump"
#define KJ_MAX_SEGMENTS 16	/* KEXEC_SEGMENT_MAX */

struct kj_segment {		/* struct kexec_segment, fixed width */
	__u64 buf;		/* user address of the data */
	__u64 bufsz;
	__u64 mem;		/* physical destination, page aligned */
	__u64 memsz;		/* page multiple; the rest of the pages is zeroed */
};

struct kj_load {
	__u64 entry;		/* physical entry point */
	__u64 segments;		/* user address of struct kj_segment[nr_segments] */
	__u32 nr_segments;
	__u32 flags;		/* KEXEC_PRESERVE_CONTEXT | KEXEC_ARCH_* */
};

struct kj_status {
	__u32 loaded;		/* 1 when an image is loaded */
	__u32 flags;
	__u64 entry;		/* where the next KJ_EXEC enters: the re-entry point after a return */
	__u32 nr_segments;
	__u32 nr_pages;		/* destination pages swapped on every jump */
	__u64 jumps;		/* completed round trips since the load */
};

#define KJ_IOC_MAGIC 0xB4
#define KJ_LOAD   _IOW(KJ_IOC_MAGIC, 1, struct kj_load)
#define KJ_EXEC   _IO(KJ_IOC_MAGIC, 2)
#define KJ_UNLOAD _IO(KJ_IOC_MAGIC, 3)
#define KJ_STATUS _IOR(KJ_IOC_MAGIC, 4, struct kj_status)

#endif
