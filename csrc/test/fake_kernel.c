/*
 * test/fake_kernel.c - load the payload module at its physical address,
 * jump into it `calls=N` times (multiboot command line, default 3), and
 * after each return check what the real kernel relies on:
 *   fake_kernel: return K ok
 *   fake_kernel: return K FAIL <item> got=0x... want=0x...
 * then "fake_kernel: done" and exit QEMU through isa-debug-exit (port 0xf4).
 * "plain" on the command line: enter without preserve-context (no return).
 */
#include <stdint.h>
#include <kit/io.h>
#include "fake_kernel.h"

static void put(char c)
{
	if (c == '\n')
		put('\r');
	while (!(inb(0x3fd) & 0x20))
		;
	outb(0x3f8, (uint8_t)c);
}

static void puts_(const char *s)
{
	while (*s)
		put(*s++);
}

static void hex(uint32_t v)
{
	puts_("0x");
	for (int i = 28; i >= 0; i -= 4)
		put("0123456789abcdef"[(v >> i) & 15]);
}

static void dec(uint32_t v)
{
	char b[11];
	int n = 0;

	do
		b[n++] = (char)('0' + v % 10);
	while (v /= 10);
	while (n)
		put(b[--n]);
}

static int failures;

static void expect(uint32_t call, const char *what, uint32_t got, uint32_t want)
{
	if (got == want)
		return;
	puts_("fake_kernel: return ");
	dec(call);
	puts_(" FAIL ");
	puts_(what);
	puts_(" got=");
	hex(got);
	puts_(" want=");
	hex(want);
	puts_("\n");
	failures++;
}

struct mb_module {
	uint32_t start, end, string, reserved;
};

static uint32_t load_elf(const uint8_t *elf)
{
	uint32_t phoff = *(const uint32_t *)(elf + 28);
	uint16_t phnum = *(const uint16_t *)(elf + 44);

	for (uint32_t i = 0; i < phnum; i++) {
		const uint32_t *ph = (const uint32_t *)(elf + phoff + 32 * i);
		uint8_t *dst = (uint8_t *)ph[3];	/* p_paddr */

		if (ph[0] != 1)				/* PT_LOAD */
			continue;
		for (uint32_t j = 0; j < ph[5]; j++)	/* p_memsz, zero past p_filesz */
			dst[j] = j < ph[4] ? elf[ph[1] + j] : 0;
	}
	return *(const uint32_t *)(elf + 24);		/* e_entry */
}

/* where word occurs in the command line s, or 0 */
static const char *find(const char *s, const char *word)
{
	for (; s && *s; s++) {
		uint32_t i = 0;

		while (word[i] && s[i] == word[i])
			i++;
		if (!word[i])
			return s + i;
	}
	return 0;
}

static uint32_t cmdline_calls(const char *s)
{
	uint32_t n = 0;

	if (!(s = find(s, "calls=")))
		return 3;
	for (; *s >= '0' && *s <= '9'; s++)
		n = n * 10 + (uint32_t)(*s - '0');
	return n;
}

void fake_main(uint32_t magic, const uint32_t *mbi)
{
	volatile uint32_t *above = (volatile uint32_t *)(SWAP_PAGE + 0x1000);
	volatile uint32_t *mark = (volatile uint32_t *)(PERCPU_BASE + PERCPU_MARK_OFFSET);
	const struct mb_module *mod;
	const char *cmdline;
	uint32_t entry, start, calls;

	/* program COM1 like the kernel's serial driver would: 115200 8N1 */
	outb(0x3f9, 0);
	outb(0x3fb, 0x80);
	outb(0x3f8, 1);
	outb(0x3f9, 0);
	outb(0x3fb, 3);
	outb(0x3fa, 0xc7);
	if (magic != 0x2badb002 || !(mbi[0] & 8) || mbi[5] < 1) {
		puts_("fake_kernel: no multiboot module (the payload)\n");
		goto out;
	}
	cmdline = (mbi[0] & 4) ? (const char *)mbi[4] : 0;
	calls = cmdline_calls(cmdline);
	plain_jump = find(cmdline, "plain") != 0;
	mod = (const struct mb_module *)mbi[6];
	start = entry = load_elf((const uint8_t *)mod->start);
	*mark = 0x5eed5eed;
	for (uint32_t k = 1; k <= calls; k++) {
		struct jump_result r;
		uint32_t cr0;

		__asm__ volatile("movl %%cr0, %0" : "=r"(cr0));
		*above = 0xdeadbeef;
		entry = kexec_jump(entry, &r);
		expect(k, "reentry", r.reentry, start);
		expect(k, "esp", r.esp, SWAP_PAGE + 0xffc);
		expect(k, "word-above-slot", *above, 0xdeadbeef);
		expect(k, "ebx", r.ebx, 0xbbbb0002);
		expect(k, "esi", r.esi, 0xeeee0005);
		expect(k, "edi", r.edi, 0xdddd0006);
		expect(k, "ebp", r.ebp, 0x99990007);
		expect(k, "eflags", r.eflags, 0x2);
		expect(k, "gdtr_base", r.gdtr_base, 0);
		expect(k, "gdtr_limit", r.gdtr_limit, 0);
		expect(k, "idtr_base", r.idtr_base, 0);
		expect(k, "idtr_limit", r.idtr_limit, 0);
		expect(k, "cr0", r.cr0, cr0);
		expect(k, "cr3", r.cr3, 0);
		expect(k, "cr4", r.cr4, 0);
		expect(k, "cs", r.cs, KERNEL_CS);
		expect(k, "ds", r.ds, KERNEL_DS);
		expect(k, "es", r.es, KERNEL_DS);
		expect(k, "ss", r.ss, KERNEL_DS);
		expect(k, "fs", r.fs, KERNEL_PERCPU);
		expect(k, "fs-cached-base", r.fs_mark, 0x5eed5eed);
		if (!failures) {
			puts_("fake_kernel: return ");
			dec(k);
			puts_(" ok\n");
		}
	}
	puts_(failures ? "fake_kernel: done, FAILED\n" : "fake_kernel: done\n");
out:
	outb(0xf4, failures ? 1 : 0);	/* QEMU exits with (value << 1) | 1 */
	for (;;)
		__asm__ volatile("cli; hlt");
}
