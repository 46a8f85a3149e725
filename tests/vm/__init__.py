"""The VM test stage: cgroup v2 tests inside a qemu guest running Debian's kernel."""
