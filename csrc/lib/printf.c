/*
 * lib/printf.c - kit_printf, a small printf for the serial console, and
 * kit_vformat, the same formatting into any sink (the result channel's
 * kit_result_printf uses it).
 *
 * Numbers go through 64 bits so that %llx/%llu work, but never through
 * libgcc: on i386 a 64-by-32 division is two 32-bit `divl`s (x86_64 has
 * a 64-bit `div`).
 */
#include <stdarg.h>
#include <stdint.h>
#include <kit/console.h>
#include <kit/string.h>

/* *n /= base, returns the remainder.  The second divl cannot overflow:
 * its high half (the first remainder) is below base. */
static uint32_t div64_32(uint64_t *n, uint32_t base)
{
#ifdef __x86_64__
	uint32_t rem = (uint32_t)(*n % base);

	*n /= base;
	return rem;
#else
	uint32_t hi = (uint32_t)(*n >> 32), lo = (uint32_t)*n, qlo, rem;
	uint32_t qhi = hi / base;

	rem = hi % base;
	__asm__("divl %4" : "=a"(qlo), "=d"(rem) : "a"(lo), "d"(rem), "rm"(base));
	*n = ((uint64_t)qhi << 32) | qlo;
	return rem;
#endif
}

struct spec {
	void (*put)(char);
	int width;
	int left;	/* '-' */
	int zero;	/* '0' */
};

static int repeat(const struct spec *sp, char c, int n)
{
	int count = 0;

	for (; n > 0; n--, count++)
		sp->put(c);
	return count;
}

static int put_field(const struct spec *sp, const char *prefix, const char *body, int len)
{
	int plen = (int)strlen(prefix), count = 0, fill;

	fill = sp->width - plen - len;
	if (!sp->left && !sp->zero)
		count += repeat(sp, ' ', fill);
	for (int i = 0; i < plen; i++, count++)
		sp->put(prefix[i]);
	if (!sp->left && sp->zero)
		count += repeat(sp, '0', fill);
	for (int i = 0; i < len; i++, count++)
		sp->put(body[i]);
	if (sp->left)
		count += repeat(sp, ' ', fill);
	return count;
}

static int put_number(const struct spec *sp, uint64_t v, uint32_t base, int upper,
		      const char *prefix)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	char buf[24];
	int n = sizeof(buf);

	do
		buf[--n] = digits[div64_32(&v, base)];
	while (v);
	return put_field(sp, prefix, buf + n, (int)sizeof(buf) - n);
}

int kit_vformat(void (*put)(char), const char *fmt, va_list ap)
{
	int count = 0;

	for (; *fmt; fmt++) {
		struct spec sp = { put, 0, 0, 0 };
		int longs = 0;
		uint64_t u;
		int64_t d;
		const char *s;
		char c;

		if (*fmt != '%') {
			put(*fmt);
			count++;
			continue;
		}
		for (fmt++;; fmt++) {
			if (*fmt == '-')
				sp.left = 1;
			else if (*fmt == '0')
				sp.zero = 1;
			else
				break;
		}
		for (; *fmt >= '0' && *fmt <= '9'; fmt++)
			sp.width = sp.width * 10 + (*fmt - '0');
		/* longs >= 2: a 64-bit argument ('ll', 'j'; 'l' and 'z' on x86_64) */
		for (; *fmt == 'l' || *fmt == 'z' || *fmt == 'j'; fmt++)
			longs += *fmt == 'j' ? 2 : *fmt == 'l' ? (sizeof(long) == 8 ? 2 : 1)
				: (sizeof(size_t) == 8 ? 2 : 0);

		switch (*fmt) {
		case 'd':
		case 'i':
			d = longs >= 2 ? va_arg(ap, int64_t) : va_arg(ap, int32_t);
			u = d < 0 ? -(uint64_t)d : (uint64_t)d;
			count += put_number(&sp, u, 10, 0, d < 0 ? "-" : "");
			break;
		case 'u':
		case 'x':
		case 'X':
			u = longs >= 2 ? va_arg(ap, uint64_t) : va_arg(ap, uint32_t);
			count += put_number(&sp, u, *fmt == 'u' ? 10 : 16, *fmt == 'X', "");
			break;
		case 'p':
			sp.zero = 1;
			sp.width = 2 + 2 * (int)sizeof(void *);
			count += put_number(&sp, (uintptr_t)va_arg(ap, void *), 16, 0, "0x");
			break;
		case 'c':
			c = (char)va_arg(ap, int);
			count += put_field(&sp, "", &c, 1);
			break;
		case 's':
			s = va_arg(ap, const char *);
			if (!s)
				s = "(null)";
			sp.zero = 0;
			count += put_field(&sp, "", s, (int)strlen(s));
			break;
		case '%':
			put('%');
			count++;
			break;
		case '\0':		/* lone '%' at the end */
			put('%');
			return count + 1;
		default:		/* unknown: show it as written */
			put('%');
			put(*fmt);
			count += 2;
			break;
		}
	}
	return count;
}

int kit_vprintf(const char *fmt, va_list ap)
{
	return kit_vformat(kit_putc, fmt, ap);
}

int kit_printf(const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = kit_vprintf(fmt, ap);
	va_end(ap);
	return n;
}
