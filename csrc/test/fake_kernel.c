/*
 * test/fake_kernel.c - load the payload module at its physical address,
 * jump into it `calls=N` times (multiboot command line, default 3), and
 * after each return check what the real kernel relies on:
 *   fake_kernel: return K ok
 *   fake_kernel: return K FAIL <item> got=0x... want=0x...
 * then "fake_kernel: done" and exit QEMU through isa-debug-exit (port 0xf4).
 * "plain" on the command line: enter without preserve-context (no return).
 * "bios": the payload calls the BIOS (kit/bios.h): FS comes back null (the
 * real kernels reload it on return: restore_processor_state, the shim), and
 * the low pages kit_bios_call borrows must hold what they held before.
 * An ELF64 payload is entered the way x86_64 Linux 6.12 enters it
 * (kexec_jump64, in long mode) and checked against that contract.
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

static void expect64(uint32_t call, const char *what, uint64_t got, uint64_t want)
{
	if (got == want)
		return;
	puts_("fake_kernel: return ");
	dec(call);
	puts_(" FAIL ");
	puts_(what);
	puts_(" got=");
	hex((uint32_t)(got >> 32));
	puts_(":");
	hex((uint32_t)got);
	puts_(" want=");
	hex((uint32_t)(want >> 32));
	puts_(":");
	hex((uint32_t)want);
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

/* ELF64: everything below 4 GiB (the fake kernel runs in 32-bit mode) */
static uint32_t load_elf64(const uint8_t *elf)
{
	uint32_t phoff = *(const uint32_t *)(elf + 32);	/* e_phoff (low half) */
	uint16_t phnum = *(const uint16_t *)(elf + 56);

	for (uint32_t i = 0; i < phnum; i++) {
		const uint8_t *ph = elf + phoff + 56 * i;
		uint8_t *dst = (uint8_t *)*(const uint32_t *)(ph + 24);	/* p_paddr */
		uint32_t offset = *(const uint32_t *)(ph + 8);
		uint32_t filesz = *(const uint32_t *)(ph + 32);
		uint32_t memsz = *(const uint32_t *)(ph + 40);

		if (*(const uint32_t *)ph != 1)			/* PT_LOAD */
			continue;
		for (uint32_t j = 0; j < memsz; j++)
			dst[j] = j < filesz ? elf[offset + j] : 0;
	}
	return *(const uint32_t *)(elf + 24);		/* e_entry (low half) */
}

extern uint32_t kexec_pdpt[1024], kexec_pd[1024];

/* The long-mode excursion's page table: 1 GiB identity mapped in 2 MiB pages. */
static void identity_map(void)
{
	kexec_pml4[0] = (uint32_t)kexec_pdpt | 3;		/* present, writable */
	kexec_pdpt[0] = (uint32_t)kexec_pd | 3;
	for (uint32_t i = 0; i < 512; i++)
		kexec_pd[2 * i] = (i << 21) | 0x83;	/* present, writable, 2 MiB */
}

#define GARBAGE(n)	(0x1111111100000000ull * (n) + 0xa0a0a000 + (n))

#define LOW_START	0x6000	/* kit/bios.h: KIT_BIOS_LOW, KIT_BIOS_LOW_SIZE */
#define LOW_END		0x9000

/* Fill the pages kit_bios_call borrows with a pattern of this jump's. */
static void fill_low(uint32_t k)
{
	for (uint32_t a = LOW_START; a < LOW_END; a += 4)
		*(volatile uint32_t *)a = a ^ (k << 24);
}

static void check_low(uint32_t k)
{
	for (uint32_t a = LOW_START; a < LOW_END; a += 4)
		if (*(volatile uint32_t *)a != (a ^ (k << 24))) {
			expect(k, "low-pages", *(volatile uint32_t *)a, a ^ (k << 24));
			return;
		}
}

static int bios;

static void check64(uint32_t entry, uint32_t calls)
{
	volatile uint32_t *above = (volatile uint32_t *)(SWAP_PAGE + 0x1000);
	uint32_t start = entry;

	identity_map();
	for (uint32_t k = 1; k <= calls; k++) {
		struct jump_result64 r;
		uint32_t cr0;

		__asm__ volatile("movl %%cr0, %0" : "=r"(cr0));
		*above = 0xdeadbeef;
		fill_low(k);
		entry = kexec_jump64(entry, &r);
		check_low(k);
		expect(k, "reentry", (uint32_t)r.reentry, start);
		expect64(k, "rsp", r.rsp, SWAP_PAGE + 0xff8);
		expect(k, "word-above-slot", *above, 0xdeadbeef);
		expect64(k, "rbx", r.rbx, GARBAGE(2));
		expect64(k, "rbp", r.rbp, GARBAGE(7));
		expect64(k, "rsi", r.rsi, GARBAGE(5));
		expect64(k, "rdi", r.rdi, GARBAGE(6));
		for (uint32_t i = 0; i < 8; i++)
			expect64(k, "r8-r15", r.r8_15[i], GARBAGE(8 + i));
		expect64(k, "rflags", r.rflags, 0x2);
		expect64(k, "gdtr_base", r.gdtr_base, 0);
		expect(k, "gdtr_limit", r.gdtr_limit, 0);
		expect64(k, "idtr_base", r.idtr_base, 0);
		expect(k, "idtr_limit", r.idtr_limit, 0);
		expect64(k, "cr0", r.cr0, cr0 | 0x80000000u);
		expect64(k, "cr3", r.cr3, (uint32_t)kexec_pml4);
		expect64(k, "cr4", r.cr4, 0x20);
		expect64(k, "cs", r.cs, KERNEL_CS64);
		expect64(k, "ds", r.ds, KERNEL_DS64);
		expect64(k, "es", r.es, KERNEL_DS64);
		expect64(k, "ss", r.ss, KERNEL_DS64);
		if (!failures) {
			puts_("fake_kernel: return ");
			dec(k);
			puts_(" ok\n");
		}
	}
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
	bios = find(cmdline, "bios") != 0;
	mod = (const struct mb_module *)mbi[6];
	if (((const uint8_t *)mod->start)[4] == 2) {	/* EI_CLASS: ELFCLASS64 */
		check64(load_elf64((const uint8_t *)mod->start), calls);
		goto done;
	}
	start = entry = load_elf((const uint8_t *)mod->start);
	*mark = 0x5eed5eed;
	for (uint32_t k = 1; k <= calls; k++) {
		struct jump_result r;
		uint32_t cr0;

		__asm__ volatile("movl %%cr0, %0" : "=r"(cr0));
		*above = 0xdeadbeef;
		fill_low(k);
		entry = kexec_jump(entry, &r);
		check_low(k);
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
		if (!bios) {
			expect(k, "fs", r.fs, KERNEL_PERCPU);
			expect(k, "fs-cached-base", r.fs_mark, 0x5eed5eed);
		}
		if (!failures) {
			puts_("fake_kernel: return ");
			dec(k);
			puts_(" ok\n");
		}
	}
done:
	puts_(failures ? "fake_kernel: done, FAILED\n" : "fake_kernel: done\n");
out:
	outb(0xf4, failures ? 1 : 0);	/* QEMU exits with (value << 1) | 1 */
	for (;;)
		__asm__ volatile("cli; hlt");
}
