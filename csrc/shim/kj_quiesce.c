// SPDX-License-Identifier: GPL-2.0
/*
 * The kernel's own KEXEC_JUMP sequence (kernel_kexec() in
 * kernel/kexec_core.c), with the exported calls a module has. User space is
 * frozen by the caller beforehand (SNAPSHOT_FREEZE on /dev/snapshot opened
 * O_WRONLY; O_RDONLY would disable CPU hotplug through the
 * PM_HIBERNATION_PREPARE notifier and remove_cpu() would fail). Everything
 * done is undone in reverse order, on success and on every failure.
 */
#include <linux/cpu.h>
#include <linux/cpumask.h>
#include <linux/delay.h>
#include <linux/pm.h>
#include <linux/sched.h>
#include <linux/suspend.h>
#include <linux/syscore_ops.h>
#include <asm/apic.h>
#include <asm/smp.h>
#include "kj.h"

/* Secondary CPUs must be offline before syscore_suspend() (timekeeping
 * warns otherwise). The image runs on the first online CPU, normally the
 * boot CPU. */
static int kj_offline_secondaries(struct cpumask *down)
{
	unsigned int primary = cpumask_first(cpu_online_mask), cpu;
	cpumask_var_t todo;
	int err = 0;

	if (!alloc_cpumask_var(&todo, GFP_KERNEL))
		return -ENOMEM;
	cpumask_copy(todo, cpu_online_mask);
	for_each_cpu(cpu, todo) {
		if (cpu == primary)
			continue;
		err = remove_cpu(cpu);
		if (err) {
			pr_err("kexec_jump: cannot take CPU %u offline (%d)\n", cpu, err);
			break;
		}
		cpumask_set_cpu(cpu, down);
	}
	free_cpumask_var(todo);
	return err;
}

/*
 * An offline CPU waits in the kernel's play_dead() loop, in the kernel's
 * text, which a jump to a second kernel swaps out. With MWAIT it wakes on a
 * write to the line it monitors (and under TCG with several CPUs MWAIT does
 * not wait at all): it would run the image's bytes. INIT puts it in
 * wait-for-SIPI, where it runs nothing until the INIT-SIPI-SIPI of the next
 * add_cpu(), in this kernel or in the image (the kernel parks CPUs the same
 * way before kexec since 6.5). Assert, then deassert, INIT (level-triggered).
 */
static void kj_park_in_init(const struct cpumask *down)
{
	unsigned int cpu;

	for_each_cpu(cpu, down) {
		u32 apicid = per_cpu(x86_cpu_to_apicid, cpu);

		apic_icr_write(APIC_INT_LEVELTRIG | APIC_INT_ASSERT | APIC_DM_INIT, apicid);
		safe_apic_wait_icr_idle();
		udelay(10);
		apic_icr_write(APIC_INT_LEVELTRIG | APIC_DM_INIT, apicid);
		safe_apic_wait_icr_idle();
	}
}

static void kj_online(const struct cpumask *down)
{
	unsigned int cpu;

	for_each_cpu(cpu, down)
		if (add_cpu(cpu))
			pr_err("kexec_jump: CPU %u did not come back online\n", cpu);
}

/* freeze_processes() marks its caller PF_SUSPEND_TASK until thaw. */
static bool kj_user_space_frozen(void)
{
	return current->flags & PF_SUSPEND_TASK;
}

int kj_quiesce_and_jump(struct kj_image *image)
{
	cpumask_var_t down;
	unsigned int sleep_flags;
	int err;

	if (!kj_user_space_frozen())
		return -EBUSY;
	if (!zalloc_cpumask_var(&down, GFP_KERNEL))
		return -ENOMEM;
	sleep_flags = lock_system_sleep();

	err = dpm_suspend_start(PMSG_FREEZE);
	if (err)
		goto resume_devices;
	err = dpm_suspend_end(PMSG_FREEZE);
	if (err)
		goto resume_devices;
	err = kj_offline_secondaries(down);
	if (err)
		goto online;
	kj_park_in_init(down);
	local_irq_disable();
	err = syscore_suspend();
	if (err)
		goto enable_irqs;

	image->entry = kj_machine_jump(image);
	image->jumps++;

	syscore_resume();
enable_irqs:
	local_irq_enable();
online:
	kj_online(down);
	dpm_resume_start(PMSG_RESTORE);
resume_devices:
	dpm_resume_end(PMSG_RESTORE);
	unlock_system_sleep(sleep_flags);
	free_cpumask_var(down);
	return err;
}
