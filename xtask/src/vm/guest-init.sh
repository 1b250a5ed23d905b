#!/bin/sh
# slimd VM test: PID 1 of the guest (no systemd). Mounts what slimd and
# Docker need (pure cgroup v2, bpffs, tracefs; no debugfs, whose
# tracing/ automount slimd does not use), mounts the
# project read-only and the run directory read-write over virtio-9p,
# starts dockerd, runs the plan `cargo xtask vm-test` wrote, and powers
# off. Everything the plan prints goes to the second serial port, which
# QEMU hands to xtask; this script's own messages go there too, prefixed
# `slimd-vm:`, and the console (first serial port) keeps the kernel's log.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8
OUT=/dev/ttyS1
stty -F "$OUT" raw -echo 2>/dev/null

say() { echo "slimd-vm: $*" >"$OUT"; echo "slimd-vm: $*"; }
off() {
    sync
    echo o >/proc/sysrq-trigger
    sleep 30
}
fail() {
    say "FAILED: $*"
    say "exit 1"
    off
}
uptime_s() { cut -d' ' -f1 /proc/uptime; }

mount -t proc proc /proc
mount -t sysfs sysfs /sys
say "booted: Linux $(uname -r) at $(uptime_s) s of uptime"
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=755 tmpfs /run
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup || fail "cannot mount cgroup2"
mount -t bpf bpf /sys/fs/bpf || fail "cannot mount bpffs"
mount -t tracefs tracefs /sys/kernel/tracing || fail "cannot mount tracefs"
hostname slimd-vm
ip link set lo up

# Modules on Debian's kernels; built in on others (then modprobe fails
# quietly and the mount says what is missing).
modprobe -a 9pnet_virtio 9p 2>/dev/null
mkdir -p /run/slimd-vm
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 vmrun /run/slimd-vm ||
    fail "cannot mount the run directory (9p tag vmrun; the kernel needs 9p and 9pnet_virtio)"
# PROJECT (host path of the project, mounted at the same path so that the
# test binaries find their fixtures) and TARGET (its target directory).
. /run/slimd-vm/env || fail "no /run/slimd-vm/env"
mkdir -p "$PROJECT"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,ro project "$PROJECT" ||
    fail "cannot mount the project (9p tag project)"
if [ -n "${TARGET:-}" ]; then
    mkdir -p "$TARGET"
    mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,ro target "$TARGET" ||
        fail "cannot mount the target directory (9p tag target)"
fi

say "starting dockerd at $(uptime_s) s"
dockerd >/var/log/dockerd.log 2>&1 &
i=0
until docker version --format '{{.Server.Version}}' >/dev/null 2>&1; do
    i=$((i + 1))
    if [ $i -gt 120 ]; then
        tail -n 30 /var/log/dockerd.log >"$OUT"
        fail "dockerd did not answer within 60 s"
    fi
    sleep 0.5
done
say "dockerd $(docker version --format '{{.Server.Version}}') ready at $(uptime_s) s"

cd "$PROJECT" || fail "cannot enter $PROJECT"
sh /run/slimd-vm/plan.sh >"$OUT" 2>&1
rc=$?
say "plan finished at $(uptime_s) s"
if [ $rc -ne 0 ]; then
    say "dockerd log (tail):"
    tail -n 20 /var/log/dockerd.log >"$OUT"
fi
say "exit $rc"
off
