/*
 * purgatory.c - between the two kernels: verify, record the way back, go.
 *
 * Runs on purgatory's own GDT and stack (entry32.S), paging off, interrupts
 * off, no IDT: nothing here may fault.  Quiet unless the images are corrupt.
 */
#include <kit/console.h>
#include <kit/string.h>

#include "purgatory.h"
#include "sha256.h"

/* Parameters, patched by the loader (all zero/default = do nothing). */
PURGATORY_PARAM struct purgatory_entry_regs purgatory_entry_regs = { 0 };
PURGATORY_PARAM struct purgatory_sha256_region purgatory_sha256_regions[SHA256_REGIONS] = { { 0, 0 } };
PURGATORY_PARAM uint8_t purgatory_sha256_digest[32] = { 0 };
PURGATORY_PARAM unsigned long purgatory_cmdline_end = 0;
PURGATORY_PARAM unsigned long purgatory_jump_back_copy = 0;
PURGATORY_PARAM uint16_t purgatory_serial_port = 0x3f8;

unsigned long purgatory_jump_back_entry;

#define WORD_DIGITS	((int)sizeof(unsigned long) * 2)
#ifdef __x86_64__
#define WORD_FMT	"0x%016lx"
#else
#define WORD_FMT	"0x%08lx"
#endif

/* "0x" and a word's hex digits, all of them, into buf (WORD_DIGITS + 3 bytes
 * with the NUL): the loader reserved that much for the jump-back entry. */
static char *hex_word(char *buf, unsigned long v)
{
	static const char digits[] = "0123456789abcdef";
	int i;

	buf[0] = '0';
	buf[1] = 'x';
	for (i = 0; i < WORD_DIGITS; i++)
		buf[2 + i] = digits[(v >> (4 * (WORD_DIGITS - 1 - i))) & 0xf];
	buf[2 + WORD_DIGITS] = 0;
	return buf;
}

static void put_digest(const char *what, const uint8_t *d)
{
	int i;

	kit_puts(what);
	for (i = 0; i < SHA256_DIGEST_SIZE; i++)
		kit_printf("%02x", d[i]);
	kit_putc('\n');
}

/*
 * One digest covers the regions concatenated in order (what kexec-tools
 * does and what the loader computes), so a mismatch cannot say which region
 * changed: list them all.
 */
static void verify_sha256(void)
{
	struct sha256_ctx ctx;
	uint8_t digest[SHA256_DIGEST_SIZE];
	unsigned i, used = 0, diff = 0;

	for (i = 0; i < SHA256_REGIONS; i++)
		if (purgatory_sha256_regions[i].len)
			used = i + 1;
	if (!used)
		return;			/* no regions: checks skipped (-i) */
	sha256_init(&ctx);
	for (i = 0; i < used; i++)
		sha256_update(&ctx, (const void *)purgatory_sha256_regions[i].start,
			      purgatory_sha256_regions[i].len);
	sha256_final(&ctx, digest);
	for (i = 0; i < SHA256_DIGEST_SIZE; i++)
		diff |= digest[i] ^ purgatory_sha256_digest[i];
	if (!diff)
		return;

	if (used == 1)
		kit_puts("purgatory: sha256 mismatch in region 0\n");
	else
		kit_printf("purgatory: sha256 mismatch in regions 0-%u (one digest covers them all)\n", used - 1);
	for (i = 0; i < used; i++)
		kit_printf("purgatory: region %u (start=" WORD_FMT ", len=" WORD_FMT ")\n", i,
			   purgatory_sha256_regions[i].start, purgatory_sha256_regions[i].len);
	put_digest("purgatory: expected ", purgatory_sha256_digest);
	put_digest("purgatory: computed ", digest);
	kit_puts("purgatory: refusing to boot corrupt memory\n");
	purgatory_halt();
}

/* Append " kexec_jump_back_entry=0x%08lx" (i386) or "=0x%016lx" (x86_64) at
 * the command line's NUL; the loader reserved the room. */
static void append_jump_back_entry(void)
{
	static const char key[] = " kexec_jump_back_entry=";
	char *p = (char *)purgatory_cmdline_end;
	const char *s;

	if (!p)
		return;
	for (s = key; *s; s++)
		*p++ = *s;
	hex_word(p, purgatory_jump_back_entry);	/* writes the NUL too */
}

/* Save the page of the jump-back entry where the loader asked: see
 * struct purgatory_jump_back_page.  The caller kernel is frozen from now
 * until the way back, so these bytes stay what that page holds. */
static void copy_jump_back_page(void)
{
	struct purgatory_jump_back_page *copy = (void *)purgatory_jump_back_copy;

	if (!copy)
		return;
	copy->addr = purgatory_jump_back_entry & ~(unsigned long)(JUMP_BACK_PAGE_SIZE - 1);
	memcpy(copy->bytes, (const void *)(unsigned long)copy->addr, JUMP_BACK_PAGE_SIZE);
}

void purgatory_main(void)
{
	kit_console_port = purgatory_serial_port;
	verify_sha256();
	append_jump_back_entry();
	copy_jump_back_page();
}
