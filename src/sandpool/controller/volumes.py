"""The volumes and mounts of a worker pod: sandpool's own, then the pool's ``jobSpec`` ones."""

from __future__ import annotations

from typing import Any, TypeVar, cast

from lightkube.core.dictmixin import DictMixin
from lightkube.models.core_v1 import (
    EmptyDirVolumeSource,
    EnvVar,
    HostPathVolumeSource,
    Volume,
    VolumeMount,
)

from sandpool.config.models import JobSpec
from sandpool.config.resolved import ResolvedPool

__all__ = ["Mounted", "builtin_volumes", "check_unique", "empty_dir", "passthrough", "typed_list"]

Mounted = tuple[Volume, VolumeMount]
T = TypeVar("T", bound=DictMixin)


def empty_dir(name: str, path: str, *, size: str | None = None, memory: bool = False) -> Mounted:
    """An emptyDir volume mounted at ``path`` (sized, or memory-backed)."""
    source = EmptyDirVolumeSource(medium="Memory" if memory else None, sizeLimit=size)
    return Volume(name=name, emptyDir=source), VolumeMount(name=name, mountPath=path)


def builtin_volumes(pool: ResolvedPool, tmp_size_limit: str) -> list[Mounted]:
    """``/tmp`` sized by tmpSizeLimit, memory-backed ``/dev/shm``, gVisor's root, ``/dev/kvm``."""
    mounted = [
        empty_dir("sandpool-tmp", "/tmp", size=tmp_size_limit),
        empty_dir("sandpool-dshm", "/dev/shm", memory=True),
    ]
    if pool.is_gvisor:
        # runsc keeps sandbox state under --root; it must be writable and survive a container
        # restart inside the pod, so that a restarted worker can reconcile what it left.
        mounted.append(empty_dir("sandpool-gvisor-root", pool.gvisor_root))
        if pool.gvisor_platform == "kvm":
            kvm = HostPathVolumeSource(path="/dev/kvm", type="CharDevice")
            mounted.append(
                (
                    Volume(name="sandpool-dev-kvm", hostPath=kvm),
                    VolumeMount(name="sandpool-dev-kvm", mountPath="/dev/kvm"),
                )
            )
    return mounted


def _unknown_keys(raw: Any, typed: Any, where: str) -> list[str]:
    """Key paths present in ``raw`` that the typed round trip dropped (misspelled fields)."""
    if isinstance(raw, dict) and isinstance(typed, dict):
        out = []
        for key, value in raw.items():
            if key not in typed and value is not None:
                out.append(f"{where}.{key}")
            elif key in typed:
                out.extend(_unknown_keys(value, typed[key], f"{where}.{key}"))
        return out
    if isinstance(raw, list) and isinstance(typed, list):
        return [
            p
            for i, (r, t) in enumerate(zip(raw, typed, strict=False))
            for p in _unknown_keys(r, t, f"{where}[{i}]")
        ]
    return []


def typed_list(cls: type[T], items: list[dict[str, Any]], where: str) -> tuple[list[T], list[str]]:
    """Turn pass-through dicts into lightkube models; returns the models and the problems."""
    models: list[T] = []
    problems: list[str] = []
    for index, raw in enumerate(items):
        path = f"{where}[{index}]"
        try:
            model = cast(T, cls.from_dict(raw))
        except Exception as exc:  # msgspec raises its own ValidationError (and TypeError)
            problems.append(f"{path}: not a valid {cls.__name__}: {exc}")
            continue
        unknown = _unknown_keys(raw, model.to_dict(), path)
        problems += [f"{p}: unknown field for a Kubernetes {cls.__name__}" for p in unknown]
        models.append(model)
    return models, problems


def passthrough(
    job_spec: JobSpec, where: str
) -> tuple[list[EnvVar], list[Volume], list[VolumeMount], list[str]]:
    """The pool's ``jobSpec.env``, ``volumes`` and ``volumeMounts`` as models, plus problems."""
    env, p1 = typed_list(EnvVar, job_spec.env, f"{where}.env")
    volumes, p2 = typed_list(Volume, job_spec.volumes, f"{where}.volumes")
    mounts, p3 = typed_list(VolumeMount, job_spec.volume_mounts, f"{where}.volumeMounts")
    return env, volumes, mounts, p1 + p2 + p3


def check_unique(values: list[str], what: str, where: str) -> list[str]:
    """One problem for each value that appears more than once (volume names, mount paths)."""
    seen: set[str] = set()
    problems = []
    for value in values:
        if value in seen:
            problems.append(f"{where}: {what} {value!r} is used twice (sandpool adds {what}s too)")
        seen.add(value)
    return problems
