"""The worker Deployment of a pool: what the seed and SPEC §2 say the pod must look like.

Assertions on the rendered objects (no snapshots); schema validation is in test_schema.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from sandpool.config.resolved import ResolvedConfig
from sandpool.controller.manifests import local_pools, render_manifests
from sandpool.controller.names import dns_label, worker_name
from sandpool.controller.workers import GPU_RESOURCE, render_worker_deployment
from sandpool.errors import ConfigError, ConfigValidationError, UnknownPool
from tests.unit.controller.conftest import Loader
from tests.unit.controller.seed_examples import SEED_EXAMPLES, SEED_POOLS, PodExpectation


def job_dict(loader: Loader, text: str, pool: str) -> dict[str, Any]:
    return render_worker_deployment(loader(text), pool).to_dict()


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


def test_every_seed_example_renders_one_worker_deployment_per_pool(load_yaml: Loader) -> None:
    for text, pools in SEED_EXAMPLES.values():
        objects = render_manifests(load_yaml(text))
        names = [o.metadata.name or "" for o in objects if o.metadata]
        assert [n for n in names if n.startswith("sandpool-worker")] == [
            worker_name(p) for p in pools
        ]
        deployments = [o for o in objects if o.kind == "Deployment"]
        assert len(deployments) == len(pools) + 2  # and the gateway's, and Redis's


def test_worker_command_image_and_privilege(load_yaml: Loader) -> None:
    job = job_dict(
        load_yaml,
        "worker:\n  imageRegistry: registry.example.com/team\n  imageName: sp-worker\n"
        "  imageTag: v1.2.3\n  pools:\n    secure:\n      containerRuntime: gvisor\n",
        "secure",
    )
    worker = container(job)
    assert worker["image"] == "registry.example.com/team/sp-worker:v1.2.3"
    # issue 17's contract, through the image's entrypoint (tini): args, not command
    assert "command" not in worker
    assert worker["args"] == [
        "sandpool", "worker", "--pool", "secure",
        "--gateway", "http://sandpool-gateway:8080",
        "--cpu", "1", "--memory", str(2**30),  # the pod's limits, not the node's
        "-c", "/etc/sandpool/sandpool.yaml",
    ]  # fmt: skip
    assert worker["imagePullPolicy"] == "IfNotPresent"
    assert worker["securityContext"]["privileged"] is True
    assert pod(job)["automountServiceAccountToken"] is False
    assert pod(job)["enableServiceLinks"] is False  # no SANDPOOL_GATEWAY_PORT=tcp://... env


def test_default_image_is_the_locally_built_one_and_empty_registry(load_yaml: Loader) -> None:
    text = "worker:\n  pools:\n    p: {}\n"
    # what `sandpool images build-worker` tags: nobody else's image runs privileged by default
    assert container(job_dict(load_yaml, text, "p"))["image"] == "localhost/sandpool-worker:0.1.0"
    bare = "worker:\n  imageRegistry: ''\n  pools:\n    p: {}\n"
    assert container(job_dict(load_yaml, bare, "p"))["image"] == "sandpool-worker:0.1.0"


def test_env_carries_pool_name_and_its_resolved_config(load_yaml: Loader) -> None:
    loaded = load_yaml(
        "worker:\n  runscPath: /opt/runsc\n  pools:\n    a:\n      containerRuntime: gvisor\n"
        "      containerRuntimeConfig:\n        gvisorPlatform: ptrace\n    b: {}\n"
    )
    env = {
        e["name"]: e.get("value")
        for e in container(render_worker_deployment(loaded, "a").to_dict())["env"]
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
        render_worker_deployment(loaded, "p")
    assert "worker.pools.p.jobSpec.volumes[0].hostPth" in str(info.value)


def test_a_mount_over_sandpools_own_is_an_error(load_yaml: Loader) -> None:
    loaded = load_yaml(
        "worker:\n  pools:\n    p:\n      jobSpec:\n        volumes: [{name: t, emptyDir: {}}]\n"
        "        volumeMounts: [{name: t, mountPath: /tmp}]\n"
    )
    with pytest.raises(ConfigValidationError, match="mount path '/tmp' is used twice"):
        render_worker_deployment(loaded, "p")


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
    names = {worker_name(p) for p in ["gpu-pool", "GPU_pool", "gpu.pool", "x" * 80, "y" * 80]}
    assert len(names) == 5
    for name in names:
        assert len(name) <= 63
        assert name == dns_label(name)  # already a valid label: unchanged


def test_worker_token_comes_from_the_secret_never_the_spec(load_yaml: Loader) -> None:
    env = container(job_dict(load_yaml, "worker:\n  pools:\n    p: {}\n", "p"))["env"]
    (token,) = [e for e in env if e["name"] == "SANDPOOL_WORKER_TOKEN"]
    assert "value" not in token
    assert token["valueFrom"] == {
        "secretKeyRef": {"key": "worker-token", "name": "sandpool-secrets"}
    }


def test_state_dir_and_config_are_mounted(load_yaml: Loader) -> None:
    text = "worker:\n  stateDir: /srv/sp\n  pools:\n    p: {}\n"
    mounted = mounts(job_dict(load_yaml, text, "p"))
    # overlayfs cannot stack on the container's own overlay root: state on the node's disk
    assert mounted["/srv/sp"]["volume"]["emptyDir"] == {}
    config = mounted["/etc/sandpool"]
    assert config["readOnly"] is True
    assert config["volume"]["configMap"] == {"name": "sandpool-config"}


def test_cgroup_namespace_is_kept(load_yaml: Loader) -> None:
    """Privileged gives a writable /sys/fs/cgroup in the pod's own cgroup namespace; a hostPath
    of the node's hierarchy would hand the worker every cgroup on the node."""
    job = job_dict(load_yaml, "worker:\n  pools:\n    p: {containerRuntime: gvisor}\n", "p")
    assert container(job)["securityContext"] == {"privileged": True}
    assert not [m for m in mounts(job) if m.startswith("/sys")]
    assert "hostPID" not in pod(job) and "hostNetwork" not in pod(job)


def test_replicas_global_and_per_pool(load_yaml: Loader) -> None:
    text = (
        "kubernetes:\n  workerReplicas: 3\n  poolReplicas: {gpu: 0}\n"
        "worker:\n  pools:\n    cpu: {}\n    gpu: {gpuType: T4, runtime: nvidia}\n"
    )
    assert job_dict(load_yaml, text, "cpu")["spec"]["replicas"] == 3
    assert job_dict(load_yaml, text, "gpu")["spec"]["replicas"] == 0
    assert job_dict(load_yaml, "worker:\n  pools:\n    p: {}\n", "p")["spec"]["replicas"] == 1


def test_replicas_for_an_unknown_pool_is_an_error(load_yaml: Loader) -> None:
    loaded = load_yaml(
        "kubernetes:\n  poolReplicas: {gpu-typo: 2}\nworker:\n  pools:\n    gpu: {}\n"
    )
    with pytest.raises(ConfigValidationError, match=r"kubernetes\.poolReplicas\.gpu-typo: no pool"):
        render_manifests(loaded)


def test_selector_is_stable_and_matches_the_pods(load_yaml: Loader) -> None:
    runc = job_dict(load_yaml, "worker:\n  pools:\n    p: {containerRuntime: runc}\n", "p")
    gvisor = job_dict(load_yaml, "worker:\n  pools:\n    p: {containerRuntime: gvisor}\n", "p")
    selector = runc["spec"]["selector"]["matchLabels"]
    # a Deployment's selector is immutable: changing the pool's runtime must not change it
    assert selector == gvisor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= runc["spec"]["template"]["metadata"]["labels"].items()
    strategy = runc["spec"]["strategy"]
    assert strategy["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}


def test_a_config_change_rolls_the_pods(load_yaml: Loader) -> None:
    def annotation(text: str) -> str:
        meta = job_dict(load_yaml, text, "p")["spec"]["template"]["metadata"]
        value: str = meta["annotations"]["sandpool.dev/config-sha256"]
        return value

    base = "worker:\n  pools:\n    p: {}\n"
    assert annotation(base) == annotation(base)
    assert annotation(base) != annotation("gateway:\n  shutdownTimeout: 5\n" + base)


@pytest.mark.parametrize(
    ("cpu", "memory", "offered"),
    [
        ("1000m", "1Gi", ["1", str(2**30)]),
        ("500m", "512Mi", ["0.5", str(2**29)]),
        ("2.5", "3G", ["2.5", str(3 * 10**9)]),
        ("16", "1e9", ["16", str(10**9)]),
    ],
)
def test_worker_offers_its_pods_limits_to_the_gateway(
    load_yaml: Loader, cpu: str, memory: str, offered: list[str]
) -> None:
    text = (
        "worker:\n  pools:\n    p:\n      poolSizing:\n"
        f"        defaultWorkerCPU: '{cpu}'\n        defaultWorkerMemory: '{memory}'\n"
    )
    worker = container(job_dict(load_yaml, text, "p"))
    args = worker["args"]
    assert [args[args.index("--cpu") + 1], args[args.index("--memory") + 1]] == offered
    assert worker["resources"]["limits"] == {"cpu": cpu, "memory": memory}
    (pod_ip,) = [e for e in worker["env"] if e["name"] == "POD_IP"]
    assert pod_ip["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
