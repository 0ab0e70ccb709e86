// SPDX-License-Identifier: GPL-2.0
/*
 * Loading an image: validate the segment list as kexec_load does, give every
 * destination page a source page, and build the page list the relocation
 * code walks to swap them.
 *
 * The pages the relocation code touches while the destinations hold the
 * image (control page, swap page, page tables, page list) must not be
 * destination pages themselves. A fresh page that happens to be the
 * destination of some image page is used in place for it (the kernel's
 * kimage_alloc_page does the same), so no allocation is wasted.
 */
#include <linux/highmem.h>
#include <linux/kexec.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>
#include "kj.h"

#define KJ_KEXEC_FLAGS (KEXEC_ON_CRASH | KEXEC_PRESERVE_CONTEXT)
#define KJ_ENTRIES_PER_PAGE (PAGE_SIZE / sizeof(unsigned long))

/*
 * kernel/kexec_core.c sanity_check_segment_list() and do_kexec_load(), same
 * order, same errno. Destinations must also be RAM: the relocation code
 * swaps them, and swapping a device's registers would be no backup.
 */
int kj_image_validate(const struct kj_load *req, const struct kj_segment *segs)
{
	unsigned long nr_pages = totalram_pages(), total = 0;
	unsigned int i, j;

	/* KEXEC_FLAGS itself lacks PRESERVE_CONTEXT without CONFIG_KEXEC_JUMP */
	if ((req->flags & KJ_KEXEC_FLAGS) != (req->flags & ~KEXEC_ARCH_MASK))
		return -EINVAL;
	if ((req->flags & KEXEC_ARCH_MASK) != KEXEC_ARCH &&
	    (req->flags & KEXEC_ARCH_MASK) != KEXEC_ARCH_DEFAULT)
		return -EINVAL;
	/* the driver only does what the kernel lacks: the preserve-context jump */
	if (!(req->flags & KEXEC_PRESERVE_CONTEXT) || (req->flags & KEXEC_ON_CRASH))
		return -EINVAL;
	if (req->nr_segments > KJ_MAX_SEGMENTS)
		return -EINVAL;
	/* the relocation code enters the image through an identity map */
	if (req->entry >= KEXEC_DESTINATION_MEMORY_LIMIT)
		return -EADDRNOTAVAIL;

	for (i = 0; i < req->nr_segments; i++) {
		u64 mstart = segs[i].mem, mend = mstart + segs[i].memsz;

		if (mstart > mend)
			return -EADDRNOTAVAIL;
		if ((mstart & ~PAGE_MASK) || (mend & ~PAGE_MASK))
			return -EADDRNOTAVAIL;
		if (mend >= KEXEC_DESTINATION_MEMORY_LIMIT)
			return -EADDRNOTAVAIL;
	}
	for (i = 0; i < req->nr_segments; i++)
		for (j = 0; j < i; j++)
			if (segs[i].mem + segs[i].memsz > segs[j].mem &&
			    segs[i].mem < segs[j].mem + segs[j].memsz)
				return -EINVAL;
	for (i = 0; i < req->nr_segments; i++)
		if (segs[i].bufsz > segs[i].memsz)
			return -EINVAL;
	for (i = 0; i < req->nr_segments; i++) {
		unsigned long pages = segs[i].memsz >> PAGE_SHIFT;

		if (pages > nr_pages / 2)
			return -EINVAL;
		total += pages;
	}
	if (total > nr_pages / 2)
		return -EINVAL;
	for (i = 0; i < req->nr_segments; i++)
		if (segs[i].memsz &&
		    region_intersects(segs[i].mem, segs[i].memsz, IORESOURCE_SYSTEM_RAM,
				      IORES_DESC_NONE) != REGION_INTERSECTS)
			return -EADDRNOTAVAIL;
	return 0;
}

/* Index in src[] of the destination page at phys, or -1 when phys is none. */
static long kj_dest_index(const struct kj_image *image, phys_addr_t phys)
{
	unsigned int i;

	for (i = 0; i < image->nr_segments; i++) {
		const struct kj_range *seg = &image->segment[i];

		if (phys >= seg->mem && phys - seg->mem < seg->memsz)
			return seg->first + ((phys - seg->mem) >> PAGE_SHIFT);
	}
	return -1;
}

static struct page *kj_alloc_page(struct kj_image *image)
{
	/* GFP_KERNEL: lowmem on i386, so every page has a kernel address and
	 * lies below 4 GiB, where the relocation code reaches it */
	struct page *page = alloc_page(GFP_KERNEL | __GFP_NOWARN);

	if (page)
		list_add(&page->lru, &image->pages);
	return page;
}

/* Give every destination page a page for its data. */
static int kj_assign_sources(struct kj_image *image)
{
	unsigned long i;

	for (i = 0; i < image->nr_pages; i++) {
		while (!image->src[i]) {
			struct page *page = kj_alloc_page(image);
			long j;

			if (!page)
				return -ENOMEM;
			j = kj_dest_index(image, page_to_phys(page));
			if (j < 0) {
				image->src[i] = page;
			} else if (!image->src[j]) {
				image->src[j] = page;	/* in place (j may be i) */
			} else {
				/* j < i holds a page outside the destinations:
				 * j gets its own destination page, i the other */
				image->src[i] = image->src[j];
				image->src[j] = page;
			}
			cond_resched();
		}
	}
	return 0;
}

/*
 * A page outside every destination, for the relocation code's own use. Once
 * all sources are assigned, a free page inside a destination can only be
 * the destination of a page whose source lies outside: that source is
 * swapped for the page itself (used in place) and returned.
 */
struct page *kj_alloc_safe_page(struct kj_image *image)
{
	struct page *page = kj_alloc_page(image), *outside;
	long j;

	if (!page)
		return NULL;
	j = kj_dest_index(image, page_to_phys(page));
	if (j < 0)
		return page;
	outside = image->src[j];
	image->src[j] = page;
	return outside;
}

static bool kj_in_place(const struct kj_image *image, unsigned long i, unsigned long dest)
{
	return page_to_phys(image->src[i]) == dest;
}

static unsigned long kj_dest_of(const struct kj_image *image, unsigned long i)
{
	unsigned int s = 0;

	while (s + 1 < image->nr_segments && i >= image->segment[s + 1].first)
		s++;
	return image->segment[s].mem + ((i - image->segment[s].first) << PAGE_SHIFT);
}

/*
 * The page list: DESTINATION d, SOURCE s (d += PAGE_SIZE after each), the
 * last slot of a list page INDIRECTION to the next, DONE at the end. Pages
 * used in place need no swap and are left out. The list pages are all
 * allocated before any entry is written, because allocating one may move a
 * source page (kj_alloc_safe_page).
 */
static int kj_build_page_list(struct kj_image *image)
{
	unsigned long i, needed = 1, expect = 0, nr_list, slot = 0;
	struct page **list;
	unsigned long *entries;
	int err = 0;

	for (i = 0; i < image->nr_pages; i++)
		needed += 2;	/* upper bound: a DESTINATION before every SOURCE */
	nr_list = DIV_ROUND_UP(needed, KJ_ENTRIES_PER_PAGE - 1);
	list = kcalloc(nr_list, sizeof(*list), GFP_KERNEL);
	if (!list)
		return -ENOMEM;
	for (i = 0; i < nr_list; i++) {
		list[i] = kj_alloc_safe_page(image);
		if (!list[i]) {
			err = -ENOMEM;
			goto out;
		}
	}
	image->head = page_to_phys(list[0]) | KJ_IND_INDIRECTION;
	entries = page_address(list[0]);

#define KJ_PUT(value) do {							\
		if (slot % KJ_ENTRIES_PER_PAGE == KJ_ENTRIES_PER_PAGE - 1) {	\
			unsigned long next = slot / KJ_ENTRIES_PER_PAGE + 1;	\
			entries[KJ_ENTRIES_PER_PAGE - 1] =			\
				page_to_phys(list[next]) | KJ_IND_INDIRECTION;	\
			entries = page_address(list[next]);			\
			slot++;							\
		}								\
		entries[slot++ % KJ_ENTRIES_PER_PAGE] = (value);		\
	} while (0)

	for (i = 0; i < image->nr_pages; i++) {
		unsigned long dest = kj_dest_of(image, i);

		if (kj_in_place(image, i, dest))
			continue;
		if (dest != expect)
			KJ_PUT(dest | KJ_IND_DESTINATION);
		KJ_PUT(page_to_phys(image->src[i]) | KJ_IND_SOURCE);
		expect = dest + PAGE_SIZE;
	}
	KJ_PUT(KJ_IND_DONE);
#undef KJ_PUT
out:
	kfree(list);
	return err;
}

/* The segment data, read from user space into the source pages. */
static int kj_copy_segments(struct kj_image *image, const struct kj_segment *segs)
{
	unsigned int s;

	for (s = 0; s < image->nr_segments; s++) {
		const struct kj_range *seg = &image->segment[s];
		unsigned long off;

		for (off = 0; off < seg->memsz; off += PAGE_SIZE) {
			u8 *page = page_address(image->src[seg->first + (off >> PAGE_SHIFT)]);
			unsigned long n = 0;

			if (off < segs[s].bufsz)
				n = min_t(u64, PAGE_SIZE, segs[s].bufsz - off);
			if (n && copy_from_user(page, u64_to_user_ptr(segs[s].buf + off), n))
				return -EFAULT;
			memset(page + n, 0, PAGE_SIZE - n);
			cond_resched();
		}
	}
	return 0;
}

static void kj_fill_control_page(struct kj_image *image)
{
	u8 *cp = page_address(image->control);

	memset(cp, 0, PAGE_SIZE);
	memcpy(cp, kj_blob_start, kj_blob_end - kj_blob_start);
	*(u64 *)(cp + KJ_PA_CONTROL) = page_to_phys(image->control);
	*(u64 *)(cp + KJ_VA_CONTROL) = (unsigned long)cp;
	*(u64 *)(cp + KJ_PA_TABLE) = image->table;
	*(u64 *)(cp + KJ_PA_SWAP) = page_to_phys(image->swap);
	*(u64 *)(cp + KJ_HEAD) = image->head;
	*(u64 *)(cp + KJ_STUB_RETURN) = (unsigned long)kj_stub_return;
}

struct kj_image *kj_image_load(const struct kj_load *req)
{
	struct kj_segment *segs;
	struct kj_image *image;
	unsigned int i;
	int err;

	segs = memdup_user(u64_to_user_ptr(req->segments),
			   min_t(u32, req->nr_segments, KJ_MAX_SEGMENTS) * sizeof(*segs));
	if (IS_ERR(segs))
		return ERR_CAST(segs);
	err = kj_image_validate(req, segs);
	if (err)
		goto free_segs;

	err = -ENOMEM;
	image = kzalloc(sizeof(*image), GFP_KERNEL);
	if (!image)
		goto free_segs;
	INIT_LIST_HEAD(&image->pages);
	image->entry = req->entry;
	image->flags = req->flags;
	image->nr_segments = req->nr_segments;
	for (i = 0; i < req->nr_segments; i++) {
		image->segment[i].mem = segs[i].mem;
		image->segment[i].memsz = segs[i].memsz;
		image->segment[i].first = image->nr_pages;
		image->nr_pages += segs[i].memsz >> PAGE_SHIFT;
	}
	image->src = kvcalloc(max(image->nr_pages, 1UL), sizeof(*image->src), GFP_KERNEL);
	if (!image->src)
		goto free_image;

	err = kj_assign_sources(image);
	if (err)
		goto free_image;
	err = -ENOMEM;
	image->control = kj_alloc_safe_page(image);
	image->swap = image->control ? kj_alloc_safe_page(image) : NULL;
	if (!image->swap)
		goto free_image;
	err = kj_build_page_table(image);
	if (!err)
		err = kj_build_page_list(image);
	if (!err)
		err = kj_copy_segments(image, segs);
	if (err)
		goto free_image;
	kj_fill_control_page(image);
	kfree(segs);
	return image;

free_image:
	kj_image_free(image);
free_segs:
	kfree(segs);
	return ERR_PTR(err);
}

void kj_image_free(struct kj_image *image)
{
	struct page *page, *next;

	if (!image)
		return;
	list_for_each_entry_safe(page, next, &image->pages, lru) {
		list_del(&page->lru);
		__free_page(page);
	}
	kvfree(image->src);
	kfree(image);
}
