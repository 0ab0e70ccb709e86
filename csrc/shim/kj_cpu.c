// SPDX-License-Identifier: GPL-2.0
/*
 * The CPU around the jump. save_processor_state() is not exported on amd64,
 * and its i386 twin restores segment registers before the GDT (the bug in
 * kernel-kexec-jump.md), so the driver does it itself:
 *   - the relocation stub saves and restores what the image's entry contract
 *     changes: CR0/CR3/CR4, GDTR/IDTR, segment registers, FS/GS bases, EFER;
 *   - this file saves and restores what a peer kernel may reprogram: the
 *     syscall/sysenter MSRs, PAT, user GS base, TSC_AUX, XCR0, the task
 *     register (busy bit cleared first), the LDT, debug registers;
 *   - kernel_fpu_begin() parks the calling task's FPU state in memory.
 * All of this runs with interrupts off, on the only online CPU.
 */
#include <linux/mm.h>
#include <linux/smp.h>
#include <asm/debugreg.h>
#include <asm/desc.h>
#include <asm/fpu/api.h>
#include <asm/fpu/xcr.h>
#include <asm/msr.h>
#include "kj.h"

static const u32 kj_msrs[] = {
#ifdef CONFIG_X86_64
	MSR_STAR, MSR_LSTAR, MSR_CSTAR, MSR_SYSCALL_MASK, MSR_KERNEL_GS_BASE,
#endif
	MSR_IA32_SYSENTER_CS, MSR_IA32_SYSENTER_ESP, MSR_IA32_SYSENTER_EIP,
	MSR_IA32_CR_PAT, MSR_TSC_AUX,
};

struct kj_cpu_state {
	u64 msr[ARRAY_SIZE(kj_msrs)];
	bool msr_saved[ARRAY_SIZE(kj_msrs)];
	u64 xcr0;
	unsigned long dr7;
	u16 ldt;
};

static void kj_save_cpu(struct kj_cpu_state *s, u8 *control)
{
	unsigned int i;
	u64 efer;

	for (i = 0; i < ARRAY_SIZE(kj_msrs); i++)
		s->msr_saved[i] = !rdmsrl_safe(kj_msrs[i], &s->msr[i]);
	/* EFER is put back by the relocation code before paging is on (NXE) */
	*(u64 *)(control + KJ_HAS_EFER) = !rdmsrl_safe(MSR_EFER, &efer);
	*(u64 *)(control + KJ_K_EFER) = efer;
	if (boot_cpu_has(X86_FEATURE_OSXSAVE))
		s->xcr0 = xgetbv(XCR_XFEATURE_ENABLED_MASK);
	get_debugreg(s->dr7, 7);
	set_debugreg(0UL, 7);
	asm volatile("sldt %0" : "=r" (s->ldt));
}

/* ltr marks the TSS descriptor busy and faults on a busy one, and the GDT
 * the CPU normally uses may be the read-only fixmap copy: use the writable
 * one meanwhile, as fix_processor_context() does. */
static void kj_reload_task_register(void)
{
	int cpu = smp_processor_id();
	struct desc_struct *gdt = get_cpu_gdt_rw(cpu);

	load_direct_gdt(cpu);
	gdt[GDT_ENTRY_TSS].type = 0x9;	/* available TSS */
	asm volatile("ltr %w0" : : "q" (GDT_ENTRY_TSS * 8));
	load_fixmap_gdt(cpu);
}

static void kj_restore_cpu(const struct kj_cpu_state *s)
{
	unsigned int i;

	kj_reload_task_register();
	asm volatile("lldt %0" : : "r" (s->ldt));
	for (i = 0; i < ARRAY_SIZE(kj_msrs); i++)
		if (s->msr_saved[i])
			wrmsrl_safe(kj_msrs[i], s->msr[i]);
	if (boot_cpu_has(X86_FEATURE_OSXSAVE))
		xsetbv(XCR_XFEATURE_ENABLED_MASK, s->xcr0);
	set_debugreg(s->dr7, 7);
}

unsigned long kj_machine_jump(struct kj_image *image)
{
	u8 *control = page_address(image->control);
	struct kj_cpu_state state;

	kernel_fpu_begin();
	kj_save_cpu(&state, control);
	*(u64 *)(control + KJ_ENTRY) = image->entry;
	kj_relocate(control);
	kj_restore_cpu(&state);
	kernel_fpu_end();
	return *(u64 *)(control + KJ_ENTRY);
}

/* The relocation code must fit below the data block of the control page. */
int kj_machine_init(void)
{
	if (kj_blob_end - kj_blob_start > KJ_DATA) {
		pr_err("kexec_jump: relocation code is %td bytes, more than %d\n",
		       kj_blob_end - kj_blob_start, KJ_DATA);
		return -EINVAL;
	}
	return 0;
}
