"""The Redis keys of the dispatch, all under one prefix (tests and installations that share a
Redis use their own).

    {p}workers              SET     ids of registered workers
    {p}w:{id}               HASH    spec (JSON), free_cpu, free_memory, free_gpus, free_sandboxes,
                                    warm (ready warm sandboxes, as last reported)
    {p}w:{id}:hb            STRING  the heartbeat; its TTL is the worker's lease
    {p}w:{id}:q             STREAM  requests placed on the worker (group ``worker``); an entry
                                    is deleted once acknowledged, so what is left is unfinished
    {p}w:{id}:sbx           SET     ids of the sandboxes it holds
    {p}lost:{id}            STRING  tombstone of a worker declared lost (refuses its return)
    {p}backlog              ZSET    request ids waiting for a worker, by arrival ({p}seq)
    {p}deadlines            ZSET    request ids scored by their backlog deadline (ms)
    {p}r:{id}               HASH    a request: demand, payload, state, attempt, worker, entry
    {p}res:{id}             LIST    its outcome (one JSON object), for BLPOP by any gateway
    {p}s:{id}               HASH    a sandbox: worker, address, pool, state, reason, need

The tenant quotas' keys (``{p}qt:``, ``{p}ql:``, ``{p}qleases``, ``{p}qs:``, ``{p}gw:``) are
described in ``dispatch.quota_scripts``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GROUP", "Keys"]

GROUP = "worker"  # the consumer group of every worker stream


@dataclass(frozen=True)
class Keys:
    """Key names under ``prefix``."""

    prefix: str = "sp:"

    @property
    def workers(self) -> str:
        return f"{self.prefix}workers"

    @property
    def backlog(self) -> str:
        return f"{self.prefix}backlog"

    @property
    def deadlines(self) -> str:
        return f"{self.prefix}deadlines"

    def worker(self, worker_id: str) -> str:
        return f"{self.prefix}w:{worker_id}"

    def heartbeat(self, worker_id: str) -> str:
        return f"{self.prefix}w:{worker_id}:hb"

    def queue(self, worker_id: str) -> str:
        return f"{self.prefix}w:{worker_id}:q"

    def held(self, worker_id: str) -> str:
        return f"{self.prefix}w:{worker_id}:sbx"

    def lost(self, worker_id: str) -> str:
        return f"{self.prefix}lost:{worker_id}"

    def request(self, request_id: str) -> str:
        return f"{self.prefix}r:{request_id}"

    def result(self, request_id: str) -> str:
        return f"{self.prefix}res:{request_id}"

    def sandbox(self, sandbox_id: str) -> str:
        return f"{self.prefix}s:{sandbox_id}"
