/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The control page, shared by the C side and the relocation code.
 *
 * One page the driver owns, never a destination page: the relocation code is
 * copied to its start and runs there at its physical (identity) address, the
 * data block below tells it where everything is, and its top is the stack the
 * relocation code uses while it swaps pages. Every slot is 64 bits wide; the
 * i386 code uses the low half.
 */
#ifndef KJ_LAYOUT_H
#define KJ_LAYOUT_H

#define KJ_DATA		0x800	/* the code must fit below this */

#define KJ_PA_CONTROL	(KJ_DATA + 0x00)	/* this page, physical */
#define KJ_VA_CONTROL	(KJ_DATA + 0x08)	/* this page, kernel virtual */
#define KJ_PA_TABLE	(KJ_DATA + 0x10)	/* the driver's page table (CR3) */
#define KJ_PA_SWAP	(KJ_DATA + 0x18)	/* swap page: also the image's stack */
#define KJ_HEAD		(KJ_DATA + 0x20)	/* first entry of the page list */
#define KJ_ENTRY	(KJ_DATA + 0x28)	/* in: where to enter; out: re-entry */
#define KJ_STUB_RETURN	(KJ_DATA + 0x30)	/* kernel virtual: back in the stub */
#define KJ_K_SP		(KJ_DATA + 0x38)	/* the kernel's state, saved by the stub */
#define KJ_K_CR0	(KJ_DATA + 0x40)
#define KJ_K_CR3	(KJ_DATA + 0x48)
#define KJ_K_CR4	(KJ_DATA + 0x50)
#define KJ_K_FS_BASE	(KJ_DATA + 0x58)	/* x86_64 */
#define KJ_K_GS_BASE	(KJ_DATA + 0x60)	/* x86_64 */
#define KJ_K_EFER	(KJ_DATA + 0x68)	/* restored before paging on: NXE */
#define KJ_HAS_EFER	(KJ_DATA + 0x70)
#define KJ_K_DS		(KJ_DATA + 0x78)	/* 16-bit selectors */
#define KJ_K_ES		(KJ_DATA + 0x7a)
#define KJ_K_SS		(KJ_DATA + 0x7c)
#define KJ_K_FS		(KJ_DATA + 0x7e)
#define KJ_K_GS		(KJ_DATA + 0x80)
#define KJ_ZERO_DESC	(KJ_DATA + 0x88)	/* 16 zero bytes: lgdt/lidt of nothing */
#define KJ_K_GDT	(KJ_DATA + 0x98)	/* sgdt: 6 or 10 bytes */
#define KJ_K_IDT	(KJ_DATA + 0xa8)
#define KJ_DATA_END	(KJ_DATA + 0xb8)

/* Page list entries, as the kernel's kimage entries: physical address | kind */
#define KJ_IND_DESTINATION	0x1
#define KJ_IND_INDIRECTION	0x2
#define KJ_IND_DONE		0x4
#define KJ_IND_SOURCE		0x8

#endif
