/*
 * kit/call.h - the result channel: parameters in, a status and bytes out.
 *
 * `kexec --call PAYLOAD [--param K=V]...` and kexec_py.call() load the
 * payload, jump to it once and read what it reported, in one process
 * (kexec_py/call.py).  That process pins a result buffer in its own memory
 * (up to KIT_CALL_MAX_PAGES pages, locked), learns the pages' physical
 * addresses from /proc/self/pagemap, and writes them with the parameters
 * into the image's call block, kit_call, before the load (the loader finds
 * the block by its magic).  The buffer lies outside every segment and
 * backup window (the loader makes sure), so the kernel's swap of the
 * image's pages around the jump never touches it: what the payload writes
 * there is in the caller's memory when the jump returns.
 *
 * The buffer starts with struct kit_result, which the kit writes when
 * payload_main returns (KIT_RESULT_RETURNED and its return value) or when
 * the payload faults (KIT_RESULT_FAULT and the fault); the bytes after it
 * are the payload's, added with kit_result_write() and kit_result_printf().
 * A payload that reports nothing still gets its header written.  Without a
 * caller (a plain `kexec -e` of an image loaded with
 * --load-preserve-context) result_pages[0] is 0: the payload's bytes go to
 * the serial console instead, and there is no header.
 *
 * The writes go to physical addresses: through paging off (i386) or the
 * identity map the kernel entered with (x86_64); a payload that installs
 * its own paging must map the pages 1:1 before it writes a result.
 */
#ifndef KIT_CALL_H
#define KIT_CALL_H

#include <stdint.h>
#include <stddef.h>

#define KIT_CALL_MAGIC		"kexec-py call v1"	/* 16 bytes, no NUL */
#define KIT_CALL_MAX_PAGES	16
#define KIT_CALL_PARAMS_SIZE	1024
#define KIT_RESULT_MAGIC	0x5345524bu		/* "KRES" */

enum kit_result_status {
	KIT_RESULT_RETURNED = 1,	/* payload_main returned `value` */
	KIT_RESULT_FAULT = 2,		/* the fault fields say which */
};

/* In the image, patched by the loader: the same layout on both arches. */
struct kit_call {
	char magic[16];
	uint64_t result_pages[KIT_CALL_MAX_PAGES];	/* physical, page aligned; 0 ends */
	uint32_t params_size;		/* bytes used in params */
	uint32_t reserved;
	char params[KIT_CALL_PARAMS_SIZE];	/* "key=value\0key=value\0" */
};

/* At the start of the result buffer. */
struct kit_result {
	uint32_t magic;			/* KIT_RESULT_MAGIC once the call ended */
	uint32_t status;		/* enum kit_result_status */
	int32_t value;			/* payload_main's return value */
	uint32_t length;		/* bytes the payload wrote; more than fit: truncated */
	uint32_t vector;		/* KIT_RESULT_FAULT: the exception */
	uint32_t error;
	uint64_t ip;
	uint64_t cr2;
	uint32_t call;			/* kit_calls */
	uint32_t reserved;
};
_Static_assert(sizeof(struct kit_result) == 48, "kit_result");
_Static_assert(offsetof(struct kit_call, params) == 152, "kit_call");

extern struct kit_call kit_call;

/* The value of parameter name (--param name=value), or NULL. */
const char *kit_param(const char *name);
/* Append bytes to the result (dropped past the buffer's end; on the console without a caller). */
void kit_result_write(const void *data, size_t len);
int kit_result_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* KIT_CALL_H */
