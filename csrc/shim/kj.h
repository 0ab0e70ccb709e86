/* SPDX-License-Identifier: GPL-2.0 */
#ifndef KJ_H
#define KJ_H

#include <linux/list.h>
#include <linux/mm_types.h>
#include <linux/types.h>
#include "kexec_jump.h"
#include "kj_layout.h"

/* One loaded image. Every page it owns is on `pages` (linked by page->lru). */
struct kj_image {
	unsigned long entry;		/* next KJ_EXEC enters here */
	unsigned int flags;
	unsigned int nr_segments;
	struct kj_range {
		unsigned long mem, memsz;
		unsigned long first;	/* index of its first page in src[] */
	} segment[KJ_MAX_SEGMENTS];
	unsigned long nr_pages;		/* destination pages */
	struct page **src;		/* the page holding each destination page's data */
	struct page *control;		/* code + data + stack, see kj_layout.h */
	struct page *swap;
	unsigned long table;		/* physical address of the page table root */
	unsigned long head;		/* first page list entry */
	u64 jumps;
	struct list_head pages;
};

/* kj_image.c */
struct kj_image *kj_image_load(const struct kj_load *req);
void kj_image_free(struct kj_image *image);
struct page *kj_alloc_safe_page(struct kj_image *image);
int kj_image_validate(const struct kj_load *req, const struct kj_segment *segs);

/* kj_pgtable.c: the page table the relocation code runs on */
int kj_build_page_table(struct kj_image *image);

/* kj_cpu.c: CPU state around the jump; returns the peer's re-entry point */
unsigned long kj_machine_jump(struct kj_image *image);
int kj_machine_init(void);

/* kj_quiesce.c: the kernel's KEXEC_JUMP sequence around kj_machine_jump */
int kj_quiesce_and_jump(struct kj_image *image);

/* kj_relocate_{32,64}.S */
extern const u8 kj_blob_start[], kj_blob_end[];
extern const u8 kj_stub_start[], kj_stub_end[], kj_stub_return[];
void kj_relocate(void *control_va);

#endif
