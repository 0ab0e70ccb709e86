// SPDX-License-Identifier: GPL-2.0
/*
 * kexec_jump: kexec jump (KEXEC_PRESERVE_CONTEXT) for x86 kernels built
 * without CONFIG_KEXEC_JUMP, as a misc device, /dev/kexec_jump. The
 * interface is in uapi/kexec_jump.h; kexec-py drives it.
 *
 * It is never a way around what guards kexec_load: loads and unloads need
 * CAP_SYS_BOOT, are refused while kernel.kexec_load_disabled is 1 and under
 * lockdown (LOCKDOWN_KEXEC); a jump needs CAP_SYS_BOOT, as reboot() does.
 */
#include <linux/capability.h>
#include <linux/err.h>
#include <linux/fs.h>
#include <linux/kexec.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/security.h>
#include <linux/uaccess.h>
#include "kj.h"

static DEFINE_MUTEX(kj_lock);		/* the image, and one operation at a time */
static struct kj_image *kj_loaded;

/*
 * kernel.kexec_load_disabled is not exported: read it as user space would.
 * A kernel whose sysctl cannot be read is treated as disabled (fail closed).
 */
static bool kj_kexec_load_disabled(void)
{
	struct file *f = filp_open("/proc/sys/kernel/kexec_load_disabled", O_RDONLY, 0);
	char buf[8] = "";
	loff_t pos = 0;
	ssize_t n;
	int value;

	if (IS_ERR(f)) {
		pr_warn_once("kexec_jump: cannot read kernel.kexec_load_disabled: refusing loads\n");
		return true;
	}
	n = kernel_read(f, buf, sizeof(buf) - 1, &pos);
	filp_close(f, NULL);
	if (n <= 0 || kstrtoint(strim(buf), 10, &value))
		return true;
	return value != 0;
}

static int kj_may_load(void)
{
	if (!capable(CAP_SYS_BOOT) || kj_kexec_load_disabled())
		return -EPERM;
	return security_locked_down(LOCKDOWN_KEXEC);
}

static void kj_unload_locked(void)
{
	kj_image_free(kj_loaded);
	kj_loaded = NULL;
}

static long kj_load(void __user *arg)
{
	struct kj_load req;
	struct kj_image *image;
	int err = kj_may_load();

	if (err)
		return err;
	if (copy_from_user(&req, arg, sizeof(req)))
		return -EFAULT;
	if (req.nr_segments == 0) {	/* as kexec_load: no segments unloads */
		kj_unload_locked();
		return 0;
	}
	image = kj_image_load(&req);
	if (IS_ERR(image))
		return PTR_ERR(image);	/* the loaded image stays */
	kj_unload_locked();
	kj_loaded = image;
	return 0;
}

static long kj_exec(void)
{
	if (!capable(CAP_SYS_BOOT))
		return -EPERM;
	if (!kj_loaded)
		return -EINVAL;
	return kj_quiesce_and_jump(kj_loaded);
}

static long kj_status(void __user *arg)
{
	struct kj_status st = {};

	if (kj_loaded) {
		st.loaded = 1;
		st.flags = kj_loaded->flags;
		st.entry = kj_loaded->entry;
		st.nr_segments = kj_loaded->nr_segments;
		st.nr_pages = kj_loaded->nr_pages;
		st.jumps = kj_loaded->jumps;
	}
	return copy_to_user(arg, &st, sizeof(st)) ? -EFAULT : 0;
}

static long kj_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	long ret;

	if (!mutex_trylock(&kj_lock))
		return -EBUSY;	/* as kexec_trylock() */
	switch (cmd) {
	case KJ_LOAD:
		ret = kj_load((void __user *)arg);
		break;
	case KJ_EXEC:
		ret = kj_exec();
		break;
	case KJ_UNLOAD:
		ret = kj_may_load();
		if (!ret)
			kj_unload_locked();
		break;
	case KJ_STATUS:
		ret = kj_status((void __user *)arg);
		break;
	default:
		ret = -ENOTTY;
	}
	mutex_unlock(&kj_lock);
	return ret;
}

static ssize_t loaded_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	bool loaded;

	mutex_lock(&kj_lock);
	loaded = kj_loaded != NULL;
	mutex_unlock(&kj_lock);
	return sysfs_emit(buf, "%d\n", loaded);
}
static DEVICE_ATTR_RO(loaded);

static struct attribute *kj_attrs[] = { &dev_attr_loaded.attr, NULL };
ATTRIBUTE_GROUPS(kj);

static const struct file_operations kj_fops = {
	.owner = THIS_MODULE,
	.unlocked_ioctl = kj_ioctl,
	.compat_ioctl = compat_ptr_ioctl,	/* fixed-width structures */
	.llseek = noop_llseek,
};

static struct miscdevice kj_device = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "kexec_jump",
	.fops = &kj_fops,
	.groups = kj_groups,
	.mode = 0600,
};

static int __init kj_init(void)
{
	int err = kj_machine_init();

	return err ? err : misc_register(&kj_device);
}

static void __exit kj_exit(void)
{
	misc_deregister(&kj_device);
	kj_image_free(kj_loaded);	/* rmmod with an image loaded frees it */
}

module_init(kj_init);
module_exit(kj_exit);
MODULE_DESCRIPTION("kexec jump (KEXEC_PRESERVE_CONTEXT) for kernels without CONFIG_KEXEC_JUMP");
MODULE_AUTHOR("kexec-py developers");
MODULE_LICENSE("GPL");
