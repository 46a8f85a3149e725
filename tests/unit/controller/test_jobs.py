"""The worker Job of a pool: what the seed and SPEC §2 say the pod must look like.

Assertions on the rendered objects (no snapshots); schema validation is in test_schema.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from sandpool.config.resolved import ResolvedConfig
from sandpool.controller.jobs import GPU_RESOURCE, render_worker_job
from sandpool.controller.manifests import local_pools, render_manifests
from sandpool.controller.names import dns_label, job_name
from sandpool.errors import ConfigError, ConfigValidationError, UnknownPool
from tests.unit.controller.conftest import Loader
from tests.unit.controller.seed_examples import SEED_EXAMPLES, SEED_POOLS, PodExpectation


def job_dict(loader: Loader, text: str, pool: str) -> dict[str, Any]:
    return render_worker_job(loader(text), pool).to_dict()


def pod(job: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = job["spec"]["template"]["spec"]
    return spec


def container(job: dict[str, Any]) -> dict[str, Any]:
    (only,) = pod(job)["containers"]
    assert isinstance(only, dict)
    return only


def mounts(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """mountPath -> (mount, volume) joined by name."""
    volumes = {v["name"]: v for v in pod(job)["volumes"]}
    return {
        m["mountPath"]: {**m, "volume": volumes[m["name"]]} for m in container(job)["volumeMounts"]
    }


@pytest.mark.parametrize(("example", "pool", "expected"), SEED_POOLS)
def test_seed_example_pod(
    load_yaml: Loader, example: str, pool: str, expected: PodExpectation
) -> None:
    job = job_dict(load_yaml, SEED_EXAMPLES[example][0], pool)
    spec = pod(job)
    if expected.runtime_class is None:
        assert "runtimeClassName" not in spec
    else:
        assert spec["runtimeClassName"] == expected.runtime_class
    for labels in (job["metadata"]["labels"], job["spec"]["template"]["metadata"]["labels"]):
        assert labels["sandpool.dev/pool"] == pool
        assert labels["sandpool.dev/container-runtime"] == expected.container_runtime
    limits = container(job)["resources"]["limits"]
    assert (limits.get(GPU_RESOURCE) == "1") if expected.gpu else (GPU_RESOURCE not in limits)
    assert ("/run/gvisor" in mounts(job)) == (expected.container_runtime == "gvisor")


def test_every_seed_example_renders_one_job_per_pool(load_yaml: Loader) -> None:
    for text, pools in SEED_EXAMPLES.values():
        objects = render_manifests(load_yaml(text))
        assert [o.metadata.name for o in objects if o.metadata] == [job_name(p) for p in pools]


def test_worker_command_image_and_privilege(load_yaml: Loader) -> None:
    job = job_dict(
        load_yaml,
        "worker:\n  imageRegistry: registry.example.com/team\n  imageName: sp-worker\n"
        "  imageTag: v1.2.3\n  pools:\n    secure:\n      containerRuntime: gvisor\n",
        "secure",
    )
    worker = container(job)
    assert worker["image"] == "registry.example.com/team/sp-worker:v1.2.3"
    assert worker["command"] == ["sandpool", "worker", "--pool", "secure"]
    assert worker["securityContext"]["privileged"] is True
    assert pod(job)["restartPolicy"] in {"OnFailure", "Never"}  # what a Job allows
    assert pod(job)["automountServiceAccountToken"] is False


def test_default_image_and_empty_registry(load_yaml: Loader) -> None:
    text = "worker:\n  pools:\n    p: {}\n"
    assert container(job_dict(load_yaml, text, "p"))["image"] == "docker.io/sandpool/worker:latest"
    bare = "worker:\n  imageRegistry: ''\n  pools:\n    p: {}\n"
    assert container(job_dict(load_yaml, bare, "p"))["image"] == "sandpool/worker:latest"


def test_env_carries_pool_name_and_its_resolved_config(load_yaml: Loader) -> None:
    loaded = load_yaml(
        "worker:\n  runscPath: /opt/runsc\n  pools:\n    a:\n      containerRuntime: gvisor\n"
        "      containerRuntimeConfig:\n        gvisorPlatform: ptrace\n    b: {}\n"
    )
    env = {
        e["name"]: e["value"] for e in container(render_worker_job(loaded, "a").to_dict())["env"]
    }
    assert env["SANDPOOL_POOL"] == "a"
    shipped = ResolvedConfig.from_json(json.loads(env["SANDPOOL_RESOLVED_CONFIG"]))
    assert list(shipped.pools) == ["a"]  # only its own pool
    assert shipped.pool("a") == loaded.resolved.pool("a")
    assert shipped.runsc_path == "/opt/runsc"
    assert shipped.pool("a").gvisor_platform == "ptrace"


def test_gpu_count_is_a_whole_number_from_pool_sizing(load_yaml: Loader) -> None:
    text = (
        "worker:\n  pools:\n    g:\n      gpuType: A100\n      runtime: nvidia\n"
        "      poolSizing:\n        defaultWorkerGpuCount: 4\n        defaultWorkerMemory: 8Gi\n"
    )
    resources = container(job_dict(load_yaml, text, "g"))["resources"]
    assert resources["limits"][GPU_RESOURCE] == "4"
    assert resources["limits"]["memory"] == resources["requests"]["memory"] == "8Gi"
    assert GPU_RESOURCE not in resources["requests"]


def test_job_spec_pieces_are_passed_through(load_yaml: Loader) -> None:
    text = """
worker:
  pools:
    g:
      gpuType: T4
      runtime: nvidia
      jobSpec:
        nodeSelector: {node.kubernetes.io/instance-type: g4dn.xlarge}
        env:
          - {name: HF_HOME, value: /models}
          - name: NODE
            valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
        volumes:
          - {name: models, hostPath: {path: /mnt/models, type: Directory}}
        volumeMounts:
          - {name: models, mountPath: /models, readOnly: true}
"""
    job = job_dict(load_yaml, text, "g")
    assert pod(job)["nodeSelector"] == {"node.kubernetes.io/instance-type": "g4dn.xlarge"}
    env = container(job)["env"]
    assert {"name": "HF_HOME", "value": "/models"} in env
    assert {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}} in env
    models = mounts(job)["/models"]
    assert models["readOnly"] is True
    assert models["volume"]["hostPath"] == {"path": "/mnt/models", "type": "Directory"}


def test_misspelled_job_spec_field_is_an_error_naming_the_key(load_yaml: Loader) -> None:
    loaded = load_yaml(
        "worker:\n  pools:\n    p:\n      jobSpec:\n        volumes:\n"
        "          - {name: data, hostPth: {path: /data}}\n"
    )
    with pytest.raises(ConfigValidationError) as info:
        render_worker_job(loaded, "p")
    assert "worker.pools.p.jobSpec.volumes[0].hostPth" in str(info.value)


def test_a_mount_over_sandpools_own_is_an_error(load_yaml: Loader) -> None:
    loaded = load_yaml(
        "worker:\n  pools:\n    p:\n      jobSpec:\n        volumes: [{name: t, emptyDir: {}}]\n"
        "        volumeMounts: [{name: t, mountPath: /tmp}]\n"
    )
    with pytest.raises(ConfigValidationError, match="mount path '/tmp' is used twice"):
        render_worker_job(loaded, "p")


def test_tmp_is_sized_and_shm_is_memory_backed(load_yaml: Loader) -> None:
    job = job_dict(load_yaml, "worker:\n  pools:\n    p:\n      tmpSizeLimit: 50Gi\n", "p")
    assert mounts(job)["/tmp"]["volume"]["emptyDir"] == {"sizeLimit": "50Gi"}
    assert mounts(job)["/dev/shm"]["volume"]["emptyDir"] == {"medium": "Memory"}


def test_bad_size_is_an_error_before_the_cluster_sees_it(load_yaml: Loader) -> None:
    expected = r"worker\.pools\.p\.tmpSizeLimit: expected a Kubernetes quantity"
    with pytest.raises(ConfigValidationError, match=expected):  # refused when it is loaded
        load_yaml("worker:\n  pools:\n    p:\n      tmpSizeLimit: 30 gigs\n")


def test_gvisor_root_is_mounted_writable(load_yaml: Loader) -> None:
    text = (
        "worker:\n  pools:\n    s:\n      containerRuntime: gvisor\n"
        "      containerRuntimeConfig:\n        gvisorRoot: /var/run/custom-gvisor\n"
    )
    root = mounts(job_dict(load_yaml, text, "s"))["/var/run/custom-gvisor"]
    assert not root.get("readOnly")
    assert "emptyDir" in root["volume"]


@pytest.mark.parametrize(
    ("runtime", "platform", "wants_kvm"),
    [
        ("gvisor", "kvm", True),
        ("gvisor", "systrap", False),
        ("gvisor", "ptrace", False),
        ("runc", "kvm", False),
    ],  # containerRuntimeConfig is ignored for runc
)
def test_dev_kvm_only_for_the_kvm_platform(
    load_yaml: Loader, runtime: str, platform: str, wants_kvm: bool
) -> None:
    text = (
        f"worker:\n  pools:\n    p:\n      containerRuntime: {runtime}\n"
        f"      containerRuntimeConfig:\n        gvisorPlatform: {platform}\n"
    )
    kvm = mounts(job_dict(load_yaml, text, "p")).get("/dev/kvm")
    if wants_kvm:
        assert kvm is not None
        assert kvm["volume"]["hostPath"] == {"path": "/dev/kvm", "type": "CharDevice"}
    else:
        assert kvm is None


def test_liveness_probe_targets_the_declared_health_port(load_yaml: Loader) -> None:
    worker = container(job_dict(load_yaml, "worker:\n  pools:\n    p: {}\n", "p"))
    probe = worker["livenessProbe"]["httpGet"]
    assert probe["path"] == "/healthz"
    (port,) = [p for p in worker["ports"] if p["name"] == probe["port"]]
    assert port["containerPort"] == 8081
    assert worker["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_external_pools_get_no_job(load_yaml: Loader) -> None:
    loaded = load_yaml("worker:\n  pools:\n    here: {}\n    there:\n      mode: external\n")
    assert [p.name for p in local_pools(loaded)] == ["here"]
    with pytest.raises(ConfigError, match="mode: external"):
        render_manifests(loaded, "there")
    with pytest.raises(UnknownPool):
        render_manifests(loaded, "nowhere")


def test_names_are_valid_and_distinct_for_unusual_pool_names() -> None:
    names = {job_name(p) for p in ["gpu-pool", "GPU_pool", "gpu.pool", "x" * 80, "y" * 80]}
    assert len(names) == 5
    for name in names:
        assert len(name) <= 63
        assert name == dns_label(name)  # already a valid label: unchanged
