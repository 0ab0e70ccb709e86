/*
 * PID 1 of the crash kernel's initramfs in test_crash_kernel.py, built static by the test.
 * It mounts /proc, prints the command line, and looks in /proc/vmcore (the crashed
 * kernel's memory, as the ELF core header describes it) for the marker whose reverse is
 * given as kexecpy.find=REVERSED: reversed so that no command line the crashed kernel
 * held contains it; only the marker process's memory does. It saves what it reads, a
 * plain copy of the dump, on the virtio disk (/dev/vda, raw, from its first byte) when
 * there is one, for the host to search. Then it powers off.
 */
#define _GNU_SOURCE /* memmem */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <unistd.h>

#define CHUNK (1 << 20)

static char cmdline[4096], marker[256], buf[CHUNK + sizeof(marker)];

static void find_marker(void)
{
	char *arg = strstr(cmdline, "kexecpy.find=");
	size_t len = 0;

	if (!arg)
		return;
	arg += strlen("kexecpy.find=");
	while (arg[len] && arg[len] != ' ' && arg[len] != '\n' && len < sizeof(marker) - 1)
		len++;
	for (size_t i = 0; i < len; i++)
		marker[i] = arg[len - 1 - i];
	marker[len] = 0;
}

int main(void)
{
	long long total = 0, hits = 0, saved = 0;
	size_t keep = 0, len;
	ssize_t n;
	int fd, disk;

	mount("proc", "/proc", "proc", 0, NULL);
	mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
	fd = open("/proc/cmdline", O_RDONLY);
	n = fd < 0 ? -1 : read(fd, cmdline, sizeof(cmdline) - 1);
	cmdline[n > 0 ? n : 0] = 0;
	printf("crash-init: cmdline: %s", cmdline);
	find_marker();
	len = strlen(marker);
	fd = open("/proc/vmcore", O_RDONLY);
	if (fd < 0 || !len) {
		printf("crash-init: no /proc/vmcore or no kexecpy.find=\n");
	} else {
		disk = open("/dev/vda", O_WRONLY);
		while ((n = read(fd, buf + keep, CHUNK)) > 0) {
			char *p = buf, *end = buf + keep + n;

			total += n;
			if (disk >= 0 && write(disk, buf + keep, n) == n)
				saved += n;
			while ((p = memmem(p, end - p, marker, len))) {
				hits++;
				p += len;
			}
			keep = (size_t)(end - buf) < len - 1 ? (size_t)(end - buf) : len - 1;
			memmove(buf, end - keep, keep);
		}
		printf("crash-init: vmcore %lld bytes, marker hits %lld\n", total, hits);
		if (disk >= 0 && fsync(disk) == 0)
			printf("crash-init: saved %lld bytes on /dev/vda\n", saved);
	}
	fflush(stdout);
	sync();
	reboot(RB_POWER_OFF);
	for (;;)
		pause();
}
