#!/bin/sh
# PID 1 of the test VM after switch_root (see init.sh): mount cgroup2, run the tests that
# /vm-out/job.env names in each cgroup layout it names, and power off. Its console output is
# the VM stage's evidence: "vm: layout NAME: pytest exit N" lines are what the host checks.
#   host  the controllers enabled at the root, as systemd does; sandpool's cgroups below it
#   pod   a cgroup namespace whose root is /pod, a non-root cgroup that holds the test
#         process and has nothing enabled below it (a worker in a Kubernetes pod on a v2 node)
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root PYTHONDONTWRITEBYTECODE=1 SANDPOOL_IN_VM=1 LANG=C.UTF-8
cd "$(dirname "$0")/../.." || exit 125
set -f  # $PYTEST_ARGS holds test ids with [brackets]: no file name expansion

doctor_line() {  # what `sandpool doctor` says about this cgroup layout
  .venv/bin/python -c 'from sandpool.doctor.host import cgroup_check
from sandpool.doctor.probes import HostProbes
print("vm: doctor:", cgroup_check(HostProbes()).message)'
}

if [ "${1:-}" = in-pod ]; then  # in the pod's cgroup and mount namespaces: its own cgroup2 view
  . /vm-out/job.env
  umount /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup || exit 125
  echo "vm: in the pod: $(cat /proc/self/cgroup)"
  doctor_line
  exec .venv/bin/pytest $PYTEST_ARGS --junitxml=/vm-out/pod.xml
fi

stop() { sync; busybox poweroff -f; }
mount -t cgroup2 none /sys/fs/cgroup
mkdir -p /vm-out /dev/shm /dev/pts
mount -t tmpfs -o mode=1777 shm /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
mount -t 9p -o trans=virtio,version=9p2000.L out /vm-out || { echo "vm: no out share"; stop; }
ip link set lo up
. /vm-out/job.env
echo "vm: kernel $(uname -r), cgroup2 controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
# As systemd and the kubelet do: every controller sandpool may use enabled at the root.
echo "+cpuset +cpu +io +memory +pids" > /sys/fs/cgroup/cgroup.subtree_control

run_host() {
  doctor_line
  .venv/bin/pytest $PYTEST_ARGS --junitxml=/vm-out/host.xml
}

run_pod() {
  mkdir /sys/fs/cgroup/pod
  echo "vm: pod cgroup controllers: $(cat /sys/fs/cgroup/pod/cgroup.controllers)," \
       "enabled below it: '$(cat /sys/fs/cgroup/pod/cgroup.subtree_control)'"
  sh -c 'echo $$ > /sys/fs/cgroup/pod/cgroup.procs && exec unshare --cgroup --mount "$0" in-pod' \
    "$0"
}

for layout in $LAYOUTS; do
  echo "vm: layout $layout: start $(date +%s)"
  "run_$layout"
  echo "vm: layout $layout: pytest exit $? at $(date +%s)"
done
echo "vm: done"
stop
