"""What the gateway and its workers say to each other about placement: plain data, JSON-ready.

``Resources`` is a worker's capacity or free share, or what one request needs (CPU in
millicores, memory in bytes, GPUs, sandboxes). ``WorkerSpec`` is what a worker registers;
``Demand`` what a request needs of one; ``Delivery`` one request handed to a worker.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sandpool.sandbox.models import SandboxRequest

__all__ = [
    "Delivery",
    "Demand",
    "Resources",
    "WorkerSpec",
    "WorkerState",
    "request_from_json",
    "request_to_json",
]


@dataclass(frozen=True)
class Resources:
    """CPU (millicores), memory (bytes), GPUs and sandboxes: a capacity, a free share or a need."""

    cpu: int = 0
    memory: int = 0
    gpus: int = 0
    sandboxes: int = 0

    def fits_in(self, free: Resources) -> bool:
        """Whether this need fits in ``free``."""
        return (self.cpu <= free.cpu and self.memory <= free.memory
                and self.gpus <= free.gpus and self.sandboxes <= free.sandboxes)  # fmt: skip

    def minus(self, other: Resources) -> Resources:
        """What is left of this share once ``other`` is taken from it."""
        return Resources(self.cpu - other.cpu, self.memory - other.memory,
                         self.gpus - other.gpus, self.sandboxes - other.sandboxes)  # fmt: skip

    def to_json(self) -> dict[str, int]:
        """As a JSON object."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Resources:
        """From ``to_json``'s output (missing numbers are 0; ValueError on non-integers)."""
        return cls(*(_count(data.get(k, 0), k) for k in ("cpu", "memory", "gpus", "sandboxes")))


def _count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a whole number >= 0")
    return value


@dataclass(frozen=True)
class WorkerSpec:
    """A worker as it registers: its pool, where the gateway reaches it, what it holds, and
    whether its runtime check passed (a worker whose check failed is never given work)."""

    pool: str
    address: str
    capacity: Resources
    gpu_type: str = ""
    priority: int = 0
    requires_pool_selector: bool = False
    container_runtime: str = "runc"
    runtime_ok: bool = True
    runtime_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """As a JSON object."""
        data = asdict(self)
        data["capacity"] = self.capacity.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WorkerSpec:
        """From ``to_json``'s output (ValueError/TypeError/KeyError if malformed)."""
        data = dict(data)
        capacity = Resources.from_json(dict(data.pop("capacity")))
        spec = cls(capacity=capacity, **data)
        if not isinstance(spec.pool, str) or not spec.pool:
            raise ValueError("pool must be a non-empty string")
        if not isinstance(spec.address, str) or not spec.address.startswith("http"):
            raise ValueError("address must be an http:// or https:// URL")
        return spec


@dataclass(frozen=True)
class WorkerState:
    """One registered worker as the gateway sees it in Redis."""

    id: str
    spec: WorkerSpec
    free: Resources
    alive: bool = True
    warm: int = 0  # ready warm sandboxes of its pool, as last reported (issue 18)


@dataclass(frozen=True)
class Demand:
    """What one request needs: a pool (None: any pool that does not require being named),
    resources and a GPU type (``""`` or ``any``: whatever the worker has); ``warm``: a warm
    sandbox of its pool would match it (placement prefers a worker with one ready)."""

    pool: str | None
    resources: Resources
    gpu_type: str = ""
    warm: bool = False

    def to_json(self) -> dict[str, Any]:
        """As a JSON object."""
        return {"pool": self.pool, "resources": self.resources.to_json(),
                "gpuType": self.gpu_type, "warm": self.warm}  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Demand:
        """From ``to_json``'s output."""
        return cls(data.get("pool"), Resources.from_json(data["resources"]),
                   str(data.get("gpuType") or ""), bool(data.get("warm")))  # fmt: skip


@dataclass(frozen=True)
class Delivery:
    """One request handed to a worker: ``attempt`` fences a re-delivery elsewhere (the
    acknowledgement of an older attempt is refused, and the worker undoes what it did)."""

    request_id: str
    attempt: int
    entry_id: str
    kind: str
    payload: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """As a JSON object."""
        return {"requestId": self.request_id, "attempt": self.attempt,
                "entryId": self.entry_id, "kind": self.kind, "payload": self.payload}  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Delivery:
        """From ``to_json``'s output."""
        return cls(str(data["requestId"]), int(data["attempt"]), str(data["entryId"]),
                   str(data["kind"]), dict(data.get("payload") or {}))  # fmt: skip


def request_to_json(request: SandboxRequest) -> dict[str, Any]:
    """A sandbox request as JSON (tuples as lists)."""
    data = asdict(request)
    data["env"] = list(request.env)
    data["labels"] = [list(pair) for pair in request.labels]
    return data


def request_from_json(data: dict[str, Any]) -> SandboxRequest:
    """Back from ``request_to_json`` (TypeError/ValueError if malformed)."""
    data = dict(data)
    data["env"] = tuple(str(e) for e in data.get("env") or ())
    data["labels"] = tuple((str(k), str(v)) for k, v in data.get("labels") or ())
    return SandboxRequest(**data)
