#!/bin/busybox sh
# slimd VM test: /init of the small initramfs that `cargo xtask vm-test`
# builds (static busybox, plus the modules the kernel needs to reach its
# root disk). It loads those modules, mounts the root filesystem (the cached
# Debian image on the first virtio disk), puts the guest init in it and
# hands over. Any failure powers the machine off, so QEMU exits at once and
# the console log says why.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t devtmpfs devtmpfs /dev
exec >/dev/console 2>&1 </dev/console
echo "slimd-vm initramfs: started"
mount -t proc proc /proc
mount -t sysfs sysfs /sys

fail() {
    echo "slimd-vm initramfs: $*"
    echo o >/proc/sysrq-trigger
    sleep 10
}

while read -r m; do
    [ -n "$m" ] || continue
    insmod "/modules/$m" || fail "insmod $m failed"
done </modules.order

# The disk shows up asynchronously once virtio_blk is loaded: wait for it
# (10 s at most).
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do
    sleep 0.1
    i=$((i + 1))
done
[ -b /dev/vda ] || fail "no /dev/vda: the kernel lacks a virtio block driver"
mkdir -p /newroot
mount -t ext4 /dev/vda /newroot || fail "cannot mount /dev/vda (ext4)"
cp /guest-init /newroot/sbin/slimd-vm-init && chmod 755 /newroot/sbin/slimd-vm-init ||
    fail "cannot install the guest init"
umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot /sbin/slimd-vm-init
