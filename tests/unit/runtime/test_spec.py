"""``build_spec``: the OCI config.json for one container, with multi-tenant defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sandpool.runtime.spec import DEFAULT_PATH, BindMount, ContainerSpec, build_spec

ROOTFS = Path("/var/lib/sandpool/containers/sp-1/rootfs")


def _build(**kwargs: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"args": ("python3", "-c", "print(42)"), "rootfs": ROOTFS,
                              "cgroups_path": "/sandpool/sp-1/ctr"}  # fmt: skip
    return build_spec(ContainerSpec(**{**fields, **kwargs}))


def test_process_args_env_cwd_and_user() -> None:
    process = _build(env=("A=1", "B=two words"), cwd="/work", uid=1000, gid=100)["process"]
    assert process["args"] == ["python3", "-c", "print(42)"]
    assert process["env"] == [DEFAULT_PATH, "A=1", "B=two words"]
    assert process["cwd"] == "/work"
    assert process["user"] == {"uid": 1000, "gid": 100}
    assert process["terminal"] is False


def test_path_is_defaulted_only_when_absent() -> None:
    assert _build()["process"]["env"] == [DEFAULT_PATH]
    assert _build(env=("PATH=/opt/bin",))["process"]["env"] == ["PATH=/opt/bin"]


def test_empty_cwd_is_root() -> None:
    assert _build(cwd="")["process"]["cwd"] == "/"


def test_reduced_capabilities_and_no_new_privileges() -> None:
    process = _build()["process"]
    assert process["noNewPrivileges"] is True
    for kind in ("bounding", "effective", "permitted"):
        caps = process["capabilities"][kind]
        assert "CAP_NET_RAW" not in caps
        assert "CAP_SYS_ADMIN" not in caps
        assert "CAP_CHOWN" in caps


def test_new_network_namespace_and_the_cgroups_path() -> None:
    linux = _build()["linux"]
    types = [ns["type"] for ns in linux["namespaces"]]
    assert "network" in types
    assert {"pid", "mount", "ipc", "uts"} <= set(types)
    assert all("path" not in ns for ns in linux["namespaces"])  # new, not joined
    assert linux["cgroupsPath"] == "/sandpool/sp-1/ctr"


def test_cpu_quota_and_no_memory_or_pids_in_the_spec() -> None:
    resources = _build(cpu=1.5)["linux"]["resources"]
    assert resources["cpu"] == {"quota": 150_000, "period": 100_000}
    assert "memory" not in resources
    assert "pids" not in resources
    assert "cpu" not in _build()["linux"]["resources"]


def test_rootfs_is_the_writable_overlay_and_the_hostname_is_set() -> None:
    spec = _build(hostname="box")
    assert spec["root"] == {"path": str(ROOTFS), "readonly": False}
    assert spec["hostname"] == "box"


def test_bind_mounts_read_only_or_read_write() -> None:
    mounts = _build(mounts=(BindMount("/data/in", "/in"),
                            BindMount("/data/out", "/out", readonly=False)))["mounts"]  # fmt: skip
    binds = {m["destination"]: m for m in mounts if m["type"] == "bind"}
    assert binds["/in"]["source"] == "/data/in"
    assert "ro" in binds["/in"]["options"] and "rw" not in binds["/in"]["options"]
    assert "rw" in binds["/out"]["options"] and "ro" not in binds["/out"]["options"]
    assert {"destination": "/proc", "type": "proc", "source": "proc"} in mounts


def test_gpu_hook_only_with_gpus_and_a_hook_path() -> None:
    hook = "/usr/bin/nvidia-container-runtime-hook"
    with_gpu = _build(gpus=2, gpu_hook=hook, gpu_devices="1,3")
    assert with_gpu["hooks"] == {"prestart": [{"path": hook, "args": [hook, "prestart"]}]}
    assert "NVIDIA_VISIBLE_DEVICES=1,3" in with_gpu["process"]["env"]
    # never every GPU: without leased devices, no NVIDIA_VISIBLE_DEVICES at all
    assert not [e for e in _build(gpus=1)["process"]["env"] if e.startswith("NVIDIA_")]
    assert "hooks" not in _build(gpus=1)  # no hook installed: nvproxy or nothing
    assert "hooks" not in _build(gpu_hook=hook)
    assert not [e for e in _build()["process"]["env"] if e.startswith("NVIDIA_")]


def test_annotations_are_copied() -> None:
    annotations = {"sandpool.pool": "default"}
    spec = _build(annotations=annotations)
    spec["annotations"]["x"] = "y"
    assert annotations == {"sandpool.pool": "default"}


def test_runc_spec_carries_the_seccomp_allowlist() -> None:
    from sandpool.runtime.seccomp import seccomp_profile

    assert _build()["linux"]["seccomp"] == seccomp_profile()
