"""The configuration as a ConfigMap: the validated document, every value explicit, no secrets.

The gateway and the workers load it with ``-c /etc/sandpool/sandpool.yaml``. URLs that may hold
passwords (``gateway.database``, ``kubernetes.redis.url``, ``kubernetes.postgres.url``) are left
out: they travel in the Secret (see credentials.py).
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap
from ruamel.yaml import YAML

from sandpool.config.models import SandpoolConfig
from sandpool.controller.names import common_labels
from sandpool.controller.wiring import CONFIG_FILE, CONFIG_MAP

__all__ = ["config_document", "config_sha256", "render_config_map"]

_SECRET_PATHS = [("gateway", "database"), ("kubernetes", "redis", "url"),
                 ("kubernetes", "postgres", "url")]  # fmt: skip


def config_document(config: SandpoolConfig) -> dict[str, Any]:
    """The configuration as the YAML document a process reads back, secrets removed."""
    doc: dict[str, Any] = config.model_dump(mode="json", by_alias=True, exclude_none=True)
    for *parents, key in _SECRET_PATHS:
        node = doc
        for part in parents:
            node = node.get(part, {})
        node.pop(key, None)
    return doc


def _yaml_text(doc: dict[str, Any]) -> str:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()


def config_sha256(config: SandpoolConfig) -> str:
    """Hash of the ConfigMap's content, put on pod templates so a change rolls the pods."""
    return hashlib.sha256(_yaml_text(config_document(config)).encode()).hexdigest()


def render_config_map(config: SandpoolConfig) -> ConfigMap:
    """``sandpool-config`` with one key, the file name the pods read."""
    name = CONFIG_FILE.rsplit("/", 1)[1]
    return ConfigMap(
        apiVersion="v1",
        kind="ConfigMap",
        metadata=ObjectMeta(name=CONFIG_MAP, labels=common_labels()),
        data={name: _yaml_text(config_document(config))},
    )
