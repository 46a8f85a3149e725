"""``sandpool doctor``: the seed's troubleshooting as checks that run before a workload fails.

report.py          one finding (ok / warn / fail, message, fix), text and JSON rendering
probes.py          where the checks look on the host; tests substitute stand-ins
host.py            the state dir and the cgroup controllers every pool shares
runtime_checks.py  a pool's runtime: binary and version, gVisor platform, kvm, gvisorRoot
smoke.py           a real container running ``true`` under a start time limit
gpu.py             NVIDIA devices and driver, nvproxy, the pod runtime of GPU pools
kube.py            ``--kube``: the cluster answers and the pools' RuntimeClasses exist
diagnose.py        all of the above, in the order printed
"""
