"""``sandpool doctor``'s checks per pool, for the pools page: run once in a background thread
(the smoke test starts a real container, seconds per pool) and kept for ``max_age`` seconds."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from sandpool.config.resolved import ResolvedConfig
from sandpool.doctor.diagnose import pool_checks
from sandpool.doctor.probes import HostProbes
from sandpool.doctor.report import Check, Status, fail

__all__ = ["DoctorCache", "PoolDiagnosis"]

DOCTOR_MAX_AGE_S = 600.0


@dataclass(frozen=True)
class PoolDiagnosis:
    """One pool's checks, when they ran, and the worst status."""

    checks: tuple[Check, ...]
    at: float

    @property
    def status(self) -> Status:
        """fail if any failed, else warn if any warned, else ok."""
        found = {c.status for c in self.checks}
        return next((s for s in (Status.FAIL, Status.WARN) if s in found), Status.OK)


class DoctorCache:
    """Diagnoses by pool name; ``get`` never blocks (None: running now). Thread-safe."""

    def __init__(self, config: ResolvedConfig, max_age: float = DOCTOR_MAX_AGE_S) -> None:
        self.config, self.max_age = config, max_age
        self._found: dict[str, PoolDiagnosis] = {}
        self._running: set[str] = set()
        self._lock = threading.Lock()

    def get(self, pool: str) -> PoolDiagnosis | None:
        """The pool's diagnosis, starting a run when there is none or it is too old."""
        with self._lock:
            found = self._found.get(pool)
            stale = found is None or time.time() - found.at > self.max_age
            if stale and pool not in self._running:
                self._running.add(pool)
                threading.Thread(target=self._diagnose, args=(pool,), daemon=True,
                                 name=f"dashboard-doctor-{pool}").start()  # fmt: skip
        return found

    def _diagnose(self, name: str) -> None:
        try:
            checks = tuple(pool_checks(self.config.pool(name), self.config, HostProbes()))
        except Exception as exc:  # shown on the page, not raised in a thread
            checks = (fail(name, "doctor", f"the checks could not run: {exc}",
                           f"run `sandpool doctor --pool {name}`"),)  # fmt: skip
        with self._lock:
            self._found[name] = PoolDiagnosis(checks, time.time())
            self._running.discard(name)
