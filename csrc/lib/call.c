/*
 * lib/call.c - the result channel (kit/call.h): parameters and the result
 * buffer the calling process pinned, and the header the kit writes when a
 * call ends.
 */
#include <stdarg.h>
#include <kit/call.h>
#include <kit/console.h>
#include <kit/fault.h>
#include <kit/string.h>

#define PAGE_SIZE	4096u

/* In .data, so that it is in the ELF file for the loader to patch. */
struct kit_call kit_call __attribute__((aligned(8), used)) = { .magic = KIT_CALL_MAGIC };

static uint32_t length;		/* of this call's result */

const char *kit_param(const char *name)
{
	size_t n = strlen(name), size = kit_call.params_size;
	const char *p = kit_call.params;

	if (size > KIT_CALL_PARAMS_SIZE)
		return 0;
	while (p < kit_call.params + size && *p) {
		size_t len = strlen(p);

		if (len > n && !memcmp(p, name, n) && p[n] == '=')
			return p + n + 1;
		p += len + 1;
	}
	return 0;
}

static uint8_t *result_byte(size_t offset)
{
	size_t page = offset / PAGE_SIZE;

	if (page >= KIT_CALL_MAX_PAGES || !kit_call.result_pages[page])
		return 0;
	return (uint8_t *)(uintptr_t)(kit_call.result_pages[page] + offset % PAGE_SIZE);
}

/* Without a caller the result goes to the console: a plain `kexec -e` shows it. */
static void result_putc(char c)
{
	uint8_t *b = result_byte(sizeof(struct kit_result) + length);

	if (!kit_call.result_pages[0]) {
		kit_putc(c);
		return;
	}
	if (b)
		*b = (uint8_t)c;
	length++;
}

void kit_result_write(const void *data, size_t len)
{
	for (size_t i = 0; i < len; i++)
		result_putc(((const char *)data)[i]);
}

int kit_result_printf(const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = kit_vformat(result_putc, fmt, ap);
	va_end(ap);
	return n;
}

static void finish(struct kit_result *r)
{
	r->magic = KIT_RESULT_MAGIC;
	r->length = length;
	r->call = kit_calls;
	length = 0;
	if (kit_call.result_pages[0])	/* the header lies within page 0 */
		memcpy(result_byte(0), r, sizeof(*r));
}

/* From the trampoline, after payload_main returned. */
void kit_call_returned(int value)
{
	struct kit_result r = { .status = KIT_RESULT_RETURNED, .value = value };

	finish(&r);
}

/* From the fault path (lib/exceptions.c), before the kit goes home. */
void kit_call_faulted(const struct kit_fault *f)
{
	struct kit_result r = {
		.status = KIT_RESULT_FAULT, .vector = (uint32_t)f->vector,
		.error = (uint32_t)f->error, .ip = f->ip, .cr2 = f->cr2,
	};

	finish(&r);
}
