#!/bin/sh
# /init of the test VM's initramfs (busybox): load the 9p/virtio/overlay modules, build a
# tmpfs root that binds the host's /usr and /etc and the worktree (read-only, over 9p), and
# switch_root into it to run guest.sh. /shares lists the shares (tag, mount point). Console lines starting "vm:" are this script's.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for mod in $(cat /modules.order); do insmod "/modules/$mod" || echo "vm: insmod $mod failed"; done
root=/newroot
mkdir -p $root
mount -t tmpfs -o size=1536m,mode=0755 root $root
share() {  # share TAG MOUNTPOINT
  mkdir -p "$root$2"
  mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 "$1" "$root$2" \
    || { echo "vm: cannot mount 9p share $1 at $2"; poweroff -f; }
}
while read -r tag path; do share "$tag" "$path"; done < /shares
worktree=$(cat /worktree.path)
for d in bin lib lib64 sbin; do ln -s "usr/$d" "$root/$d"; done
for d in proc sys dev tmp run var root; do mkdir -p "$root/$d"; done
chmod 1777 $root/tmp
mount --move /proc $root/proc
mount --move /sys $root/sys
mount --move /dev $root/dev
echo "vm: switching root"
exec switch_root $root /bin/sh "$worktree/tests/vm/guest.sh"
