"""Every rendered object passes the official Kubernetes schemas, strictly (no unknown fields).

Uses the schemas that ship inside the ``kubernetes-validate`` package: no network, no cluster.
"""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from sandpool.controller.credentials import credentials
from sandpool.controller.manifests import Manifest, render_manifests
from tests.unit.controller.conftest import Loader
from tests.unit.controller.seed_examples import SEED_EXAMPLES

KUBERNETES_VERSION = "1.30"

EVERYTHING = """
kubernetes:
  gateway: {replicas: 3, port: 9000, serviceType: LoadBalancer, cpu: "2", memory: 2Gi}
  workerReplicas: 2
  poolReplicas: {kata-runc: 0}
  imagePullSecrets: [regcred]
  postgres: {storage: 50Gi, storageClassName: fast-ssd, image: registry.example.com/pg:15}
worker:
  imageRegistry: ghcr.io/acme
  pools:
    kvm-gpu:
      gpuType: H100
      runtime: nvidia
      containerRuntime: gvisor
      containerRuntimeConfig: {gvisorPlatform: kvm, gvisorRoot: /run/gv}
      tmpSizeLimit: 100Gi
      poolSizing: {defaultWorkerCPU: "8", defaultWorkerMemory: 64Gi, defaultWorkerGpuCount: 8}
      jobSpec:
        nodeSelector: {nvidia.com/gpu.product: H100}
        env: [{name: A, value: b}, {name: IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}]
        volumes: [{name: cache, persistentVolumeClaim: {claimName: cache}}]
        volumeMounts: [{name: cache, mountPath: /cache}]
    kata-runc:
      runtime: kata
      containerRuntime: runc
"""


def validate(obj: Manifest | dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("example", sorted(SEED_EXAMPLES))
def test_seed_examples_pass_the_schemas(load_yaml: Loader, example: str) -> None:
    objects = render_manifests(load_yaml(SEED_EXAMPLES[example][0]), runtime_classes=True)
    assert objects
    for obj in objects:
        validate(obj)


def test_every_feature_at_once_passes_the_schemas(load_yaml: Loader) -> None:
    loaded = load_yaml(EVERYTHING)
    objects = render_manifests(loaded, runtime_classes=True, secret=credentials(loaded.model))
    assert sorted(o.kind or "" for o in objects) == [
        "ConfigMap",
        "Deployment",  # gateway
        "Deployment",  # redis
        "Deployment",  # worker kvm-gpu
        "Deployment",  # worker kata-runc
        "NetworkPolicy",
        "NetworkPolicy",
        "RuntimeClass",
        "RuntimeClass",
        "Secret",
        "Service",
        "Service",
        "Service",
        "StatefulSet",
    ]
    for obj in objects:
        validate(obj)


def test_external_stores_pass_the_schemas(load_yaml: Loader) -> None:
    loaded = load_yaml(
        "kubernetes:\n  redis: {url: 'redis://:pw@redis.example:6379/0'}\n"
        "  postgres: {url: 'postgresql+psycopg://u:pw@db.example/sp'}\n"
        "worker:\n  pools:\n    p: {}\n    q: {}\n"
    )
    objects = render_manifests(loaded, secret=credentials(loaded.model))
    assert [o.kind for o in objects] == [
        "Secret", "ConfigMap", "Deployment", "Service", "Deployment", "Deployment"
    ]  # fmt: skip
    for obj in objects:
        validate(obj)


def test_the_validator_is_strict(load_yaml: Loader) -> None:
    """Guards the tests above: an unknown field in a pod spec must be rejected."""
    (job,) = render_manifests(load_yaml("worker:\n  pools:\n    p: {}\n"), "p")
    data = job.to_dict()
    data["spec"]["template"]["spec"]["runtimeClass"] = "nvidia"  # the misspelling users make
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(data)
