#!/bin/busybox sh
# /init of the sandtrace VM (built by xtask/src/vm/initramfs.rs).
#
# Loads the drivers listed in /etc/modules.load, mounts the host's root filesystem (9p tag
# `host`, read-only) under a tmpfs overlay, mounts the pseudo filesystems and the read-write
# shares, runs the command xtask wrote to RUN/command.sh in a chroot of it with stdout and
# stderr sent to the virtio ports `sandtrace.stdout` and `sandtrace.stderr`, prints
# `sandtrace-vm-exit RUN STATUS` on the console and powers off. RUN, a host directory, comes
# from `sandtrace.run=RUN` on the kernel command line. Every failure powers off without that
# line, which xtask reports as an error together with this console's output.

/bin/busybox --install -s /bin
export PATH=/bin

# Messages go through the kernel log: printk writes the console synchronously, while a
# write to the console tty may still sit in its buffer when `poweroff -f` stops the machine.
say() {
	echo "<2>$*" >/dev/kmsg 2>/dev/null || echo "$*" >&2
}

die() {
	say "sandtrace-vm-init: error: $*"
	poweroff -f
	exit 1
}

mnt() {
	mount "$@" || die "mount $*"
}

mnt -t devtmpfs devtmpfs /dev
mnt -t proc proc /proc
mnt -t sysfs sysfs /sys

while read -r module; do
	insmod "/lib/modules/$module" || die "insmod $module"
done </etc/modules.load

run=
for arg in $(cat /proc/cmdline); do
	case "$arg" in sandtrace.run=*) run="${arg#sandtrace.run=}" ;; esac
done
[ -n "$run" ] || die "no sandtrace.run= on the kernel command line"

# The largest message the virtio transport accepts: fewer round trips per read.
ninep="trans=virtio,version=9p2000.L,msize=512000"
# The host's files do not change during a run, so the guest may cache them (cache=loose):
# without it every read and lookup is a round trip to the host.
mnt -t 9p -o "$ninep,ro,cache=loose" host /mnt/host
mnt -t tmpfs -o mode=0755 tmpfs /mnt/rw
mkdir /mnt/rw/upper /mnt/rw/work
mnt -t overlay -o lowerdir=/mnt/host,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work overlay /mnt/root

root=/mnt/root
mnt -t proc proc "$root/proc"
mnt -t sysfs sysfs "$root/sys"
mnt -t devtmpfs devtmpfs "$root/dev"
mkdir -p "$root/dev/pts" "$root/dev/shm"
# What udev adds on the host: programs open /dev/stdout and /dev/fd/N.
ln -s /proc/self/fd "$root/dev/fd"
ln -s fd/0 "$root/dev/stdin"
ln -s fd/1 "$root/dev/stdout"
ln -s fd/2 "$root/dev/stderr"
mnt -t devpts -o ptmxmode=0666 devpts "$root/dev/pts"
mnt -t tmpfs -o mode=1777 tmpfs "$root/dev/shm"
mnt -t securityfs securityfs "$root/sys/kernel/security"
mnt -t bpf -o mode=0700 bpf "$root/sys/fs/bpf"
mnt -t cgroup2 cgroup2 "$root/sys/fs/cgroup"
mount -t debugfs debugfs "$root/sys/kernel/debug" || say "sandtrace-vm-init: no debugfs"
mount -t tracefs tracefs "$root/sys/kernel/tracing" || say "sandtrace-vm-init: no tracefs"
mnt -t tmpfs -o mode=1777 tmpfs "$root/tmp"
mnt -t tmpfs -o mode=0755 tmpfs "$root/run"

while read -r tag path; do
	mkdir -p "$root$path" || die "mkdir $path"
	mnt -t 9p -o "$ninep" "$tag" "$root$path"
done <"/mnt/host$run/shares"

# Prints the device of the virtio port named $1; ports appear shortly after the driver loads.
port() {
	for _ in $(seq 500); do
		for dir in /sys/class/virtio-ports/*; do
			if [ "$(cat "$dir/name" 2>/dev/null)" = "$1" ] && [ -e "/dev/${dir##*/}" ]; then
				echo "/dev/${dir##*/}"
				return
			fi
		done
		sleep 0.01
	done
	die "virtio port $1 did not appear"
}
stdout=$(port sandtrace.stdout) || exit 1
stderr=$(port sandtrace.stderr) || exit 1
script=$(cat "/mnt/host$run/command.sh") || die "reading $run/command.sh"

# A port opens only once at a time; pipes in between let the command reopen /dev/stdout.
mkfifo /stdout /stderr
cat /stdout >"$stdout" &
stdout_copy=$!
cat /stderr >"$stderr" &
stderr_copy=$!

# In a mount namespace of its own, the root is moved onto / before the chroot (as
# switch_root does): a plain chroot would make the kernel refuse user namespaces inside.
env -i /bin/unshare -m --propagation private /bin/sh -c \
	'cd "$0" && mount --move . / && exec chroot . /bin/sh -c "$1"' "$root" "$script" \
	</dev/null >/stdout 2>/stderr
status=$?

# Whatever the command left running would hold the pipes open: end it, as poweroff would.
for process in /proc/[0-9]*; do
	case " 1 $stdout_copy $stderr_copy " in
	*" ${process#/proc/} "*) ;;
	*) kill -9 "${process#/proc/}" 2>/dev/null ;;
	esac
done
wait "$stdout_copy" "$stderr_copy"

say "sandtrace-vm-exit $run $status"
poweroff -f
