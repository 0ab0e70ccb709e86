// SPDX-License-Identifier: GPL-2.0
/*
 * The page table the relocation code switches to. It maps
 *   - the stub (kj_relocate's page in module text) at its kernel address, so
 *     the instruction after the CR3 write still runs, as relocate_kernel_64
 *     does with its control page;
 *   - the control page at its physical address, where the relocation code
 *     runs (i386: only until it turns paging off);
 *   - x86_64: all System RAM at its physical address with 2 MiB pages: the
 *     kernel's entry contract for a 64-bit image is an identity map of RAM;
 *     and the 2 MiB around the image's entry, which need not be RAM of this
 *     kernel: a second kernel's way back enters the first kernel's re-entry
 *     page, which lies outside the RAM the second kernel was given. A peer
 *     comes back with its re-entry point in the same control page, so the
 *     load's entry is the one to map.
 * Entries are present, writable, supervisor, executable: SMEP, SMAP and NX
 * do not apply. Every table page comes from kj_alloc_safe_page().
 */
#include <linux/io.h>
#include <linux/ioport.h>
#include <linux/mm.h>
#include <linux/vmalloc.h>
#include "kj.h"

#define KJ_P	0x001ULL
#define KJ_RW	0x002ULL
#define KJ_PS	0x080ULL	/* a large page at a directory level */

struct kj_pt_format {
	unsigned int levels;
	unsigned int shift[5];		/* of each level, root first */
	unsigned int entries[5];
	unsigned int entry_size;	/* 8, or 4 for classic 32-bit paging */
	bool pdpt;			/* PAE: the root entries take only P */
};

struct kj_pt {
	struct kj_image *image;
	struct kj_pt_format fmt;
	void *root;
};

static struct kj_pt_format kj_format(void)
{
#ifdef CONFIG_X86_64
	if (native_read_cr4() & X86_CR4_LA57)
		return (struct kj_pt_format){ 5, {48, 39, 30, 21, 12}, {512, 512, 512, 512, 512}, 8, false };
	return (struct kj_pt_format){ 4, {39, 30, 21, 12}, {512, 512, 512, 512}, 8, false };
#elif defined(CONFIG_X86_PAE)
	return (struct kj_pt_format){ 3, {30, 21, 12}, {4, 512, 512}, 8, true };
#else
	return (struct kj_pt_format){ 2, {22, 12}, {1024, 1024}, 4, false };
#endif
}

static u64 kj_get(const struct kj_pt *pt, void *table, unsigned long i)
{
	return pt->fmt.entry_size == 8 ? ((u64 *)table)[i] : ((u32 *)table)[i];
}

static void kj_set(const struct kj_pt *pt, void *table, unsigned long i, u64 v)
{
	if (pt->fmt.entry_size == 8)
		((u64 *)table)[i] = v;
	else
		((u32 *)table)[i] = v;
}

static void *kj_new_table(struct kj_pt *pt)
{
	struct page *page = kj_alloc_safe_page(pt->image);

	if (!page)
		return NULL;
	clear_page(page_address(page));
	return page_address(page);
}

/* Map one page of 1 << leaf_shift bytes: va -> pa. */
static int kj_map(struct kj_pt *pt, unsigned long va, u64 pa, unsigned int leaf_shift)
{
	void *table = pt->root;
	unsigned int level;

	for (level = 0; level < pt->fmt.levels; level++) {
		unsigned int shift = pt->fmt.shift[level];
		unsigned long i = (va >> shift) & (pt->fmt.entries[level] - 1);
		u64 e;
		void *next;

		if (shift == leaf_shift) {
			u64 flags = KJ_P | KJ_RW | (level + 1 < pt->fmt.levels ? KJ_PS : 0);

			kj_set(pt, table, i, pa | flags);
			return 0;
		}
		e = kj_get(pt, table, i);
		if (e & KJ_P) {
			next = __va(e & PAGE_MASK & ~(1ULL << 63));
		} else {
			next = kj_new_table(pt);
			if (!next)
				return -ENOMEM;
			kj_set(pt, table, i, __pa(next) | KJ_P | (level == 0 && pt->fmt.pdpt ? 0 : KJ_RW));
		}
		table = next;
	}
	return -EINVAL;
}

/* The stub's pages: module text (vmalloc space) at its own address. */
static int kj_map_stub(struct kj_pt *pt)
{
	unsigned long va = (unsigned long)kj_stub_start & PAGE_MASK;
	int err = 0;

	for (; !err && va < (unsigned long)kj_stub_end; va += PAGE_SIZE)
		err = kj_map(pt, va, page_to_phys(vmalloc_to_page((void *)va)), PAGE_SHIFT);
	return err;
}

#ifdef CONFIG_X86_64
static int kj_map_ram_range(struct resource *res, void *arg)
{
	u64 pa = round_down(res->start, PMD_SIZE), end = round_up(res->end + 1, PMD_SIZE);
	int err = 0;

	for (; !err && pa < end; pa += PMD_SIZE)
		err = kj_map(arg, pa, pa, PMD_SHIFT);
	return err;
}

static int kj_map_identity(struct kj_pt *pt)
{
	u64 entry = round_down(pt->image->entry, PMD_SIZE);
	int err;

	err = walk_iomem_res_desc(IORES_DESC_NONE, IORESOURCE_SYSTEM_RAM | IORESOURCE_BUSY,
				  0, -1, pt, kj_map_ram_range);
	/* a 2 MiB leaf like RAM's, so mapping it twice writes the same entry */
	return err ?: kj_map(pt, entry, entry, PMD_SHIFT);
}
#else
static int kj_map_identity(struct kj_pt *pt)
{
	u64 pa = page_to_phys(pt->image->control);

	return kj_map(pt, pa, pa, PAGE_SHIFT);
}
#endif

int kj_build_page_table(struct kj_image *image)
{
	struct kj_pt pt = { .image = image, .fmt = kj_format() };
	int err;

	pt.root = kj_new_table(&pt);
	if (!pt.root)
		return -ENOMEM;
	image->table = __pa(pt.root);
	err = kj_map_identity(&pt);
	if (!err)
		err = kj_map_stub(&pt);
	return err;
}
