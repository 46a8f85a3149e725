"""The rest of the deployment around the workers: gateway, Secret, ConfigMap, Redis, PostgreSQL.

Assertions on the rendered objects; the schema checks are in test_schema.py.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from sandpool.config import LoadedConfig
from sandpool.controller.configmap import render_config_map
from sandpool.controller.credentials import credentials, render_secret, secret_values
from sandpool.controller.manifests import render_manifests
from tests.unit.controller.conftest import Loader

POOLS = "worker:\n  pools:\n    p: {}\n"
EXTERNAL = (
    "kubernetes:\n  redis: {url: 'redis://:rpw@redis.example:6379/2'}\n"
    "  postgres: {url: 'postgresql+psycopg://u:dbpw@db.example/sp'}\n"
    "gateway:\n  database: 'postgresql+psycopg://u:dbpw@db.example/sp'\n" + POOLS
)


def by_name(loaded: LoadedConfig) -> dict[tuple[str, str], dict[str, Any]]:
    objects = render_manifests(loaded, secret=credentials(loaded.model))
    return {(o.kind or "", o.metadata.name or ""): o.to_dict() for o in objects if o.metadata}


def only_container(obj: dict[str, Any]) -> dict[str, Any]:
    (container,) = obj["spec"]["template"]["spec"]["containers"]
    assert isinstance(container, dict)
    return container


def test_gateway_runs_the_contract_command_unprivileged(load_yaml: Loader) -> None:
    objects = by_name(load_yaml(POOLS))
    gateway = objects[("Deployment", "sandpool-gateway")]
    container = only_container(gateway)
    assert container["args"] == [
        "sandpool", "server", "--listen", "0.0.0.0:8080",
        "--redis", "$(SANDPOOL_REDIS_URL)", "--database", "$(SANDPOOL_DATABASE_URL)",
        "-c", "/etc/sandpool/sandpool.yaml",
    ]  # fmt: skip
    secret_refs = {e["name"]: e["valueFrom"]["secretKeyRef"]["key"] for e in container["env"]}
    assert secret_refs == {
        "SANDPOOL_ADMIN_KEY": "admin-key",
        "SANDPOOL_WORKER_TOKEN": "worker-token",
        "SANDPOOL_REDIS_URL": "redis-url",
        "SANDPOOL_DATABASE_URL": "database-url",
    }
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}
    }  # fmt: skip
    pod = gateway["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert gateway["spec"]["replicas"] == 2
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_gateway_service_reaches_the_gateway_pods(load_yaml: Loader) -> None:
    objects = by_name(load_yaml("kubernetes:\n  gateway: {port: 9000}\n" + POOLS))
    service = objects[("Service", "sandpool-gateway")]
    gateway = objects[("Deployment", "sandpool-gateway")]
    labels = gateway["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    (port,) = service["spec"]["ports"]
    assert port["port"] == 9000
    assert only_container(gateway)["ports"][0]["containerPort"] == 9000
    worker = only_container(objects[("Deployment", "sandpool-worker-p")])
    assert "http://sandpool-gateway:9000" in worker["args"]


def test_small_install_deploys_both_stores_behind_a_gateway_only_policy(load_yaml: Loader) -> None:
    objects = by_name(load_yaml(POOLS))
    gateway_labels = objects[("Deployment", "sandpool-gateway")]["spec"]["template"]["metadata"]
    for store, port in (("sandpool-redis", 6379), ("sandpool-postgres", 5432)):
        policy = objects[("NetworkPolicy", f"{store}-from-gateway")]["spec"]
        (rule,) = policy["ingress"]
        (peer,) = rule["from"]
        assert peer["podSelector"]["matchLabels"].items() <= gateway_labels["labels"].items()
        assert rule["ports"] == [{"port": port, "protocol": "TCP"}]
        assert ("Service", store) in objects
    redis = only_container(objects[("Deployment", "sandpool-redis")])
    assert redis["args"][:3] == ["redis-server", "--requirepass", "$(REDIS_PASSWORD)"]
    postgres = objects[("StatefulSet", "sandpool-postgres")]
    env = {e["name"]: e for e in only_container(postgres)["env"]}
    assert env["PGDATA"]["value"] == "/var/lib/postgresql/data/pgdata"
    assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "postgres-password"
    claim = postgres["spec"]["volumeClaimTemplates"][0]["spec"]
    assert claim["resources"]["requests"] == {"storage": "10Gi"}


def test_external_stores_are_not_deployed_and_their_urls_go_to_the_secret(
    load_yaml: Loader,
) -> None:
    loaded = load_yaml(EXTERNAL)
    objects = by_name(loaded)
    assert not [key for key in objects if "redis" in key[1] or "postgres" in key[1]]
    values = secret_values(render_secret(credentials(loaded.model)))
    assert values["redis-url"] == "redis://:rpw@redis.example:6379/2"
    assert values["database-url"] == "postgresql+psycopg://u:dbpw@db.example/sp"
    assert sorted(values) == ["admin-key", "database-url", "redis-url", "worker-token"]


def test_secret_keeps_what_the_cluster_has_and_derives_the_urls(load_yaml: Loader) -> None:
    config = load_yaml(POOLS).model
    first = credentials(config)
    assert first["admin-key"] != first["worker-token"]
    assert first["redis-url"] == f"redis://:{first['redis-password']}@sandpool-redis:6379/0"
    assert first["database-url"] == (
        f"postgresql+psycopg://sandpool:{first['postgres-password']}"
        "@sandpool-postgres:5432/sandpool"
    )
    assert credentials(config, kept=first) == first
    again = credentials(config)
    assert again["postgres-password"] != first["postgres-password"]  # random each time
    rotated = credentials(config, kept={k: v for k, v in first.items() if k != "admin-key"})
    assert rotated["admin-key"] != first["admin-key"]
    assert rotated["postgres-password"] == first["postgres-password"]
    secret = render_secret(first).to_dict()
    assert base64.b64decode(secret["data"]["worker-token"]).decode() == first["worker-token"]


def test_config_map_reads_back_as_the_same_configuration_without_secrets(
    load_yaml: Loader, tmp_path: Path
) -> None:
    loaded = load_yaml(EXTERNAL)
    (text,) = (render_config_map(loaded.model).data or {}).values()
    assert "dbpw" not in text and "rpw@" not in text
    path = tmp_path / "sandpool.yaml"
    path.write_text(text)
    back = LoadedConfig.load([str(path)], {})
    assert back.resolved == loaded.resolved
    assert back.model.kubernetes.redis.url == ""
    assert back.model.worker == loaded.model.worker
