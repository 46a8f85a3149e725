"""The worker: one container's lifecycle (bundle, overlay, cgroup, run, clean-up), its records,
and the recovery of what a crashed sandpool left behind."""
