"""``RunHandle``: what a one-shot run's ``on_container`` gets, cold or warm.

``Sandpool.run_request`` hands it to its caller before the command starts, so that another
thread (a served client's hang-up or signal, a stopping server) can stop the run. A cold run
hands its ``worker.container.ContainerRun``, a warm one its ``sandbox.warm_run.WarmRun``;
either way ``stop()`` kills what the command started and the run ends 137, cleaning up as
usual, and a ``stop()`` after the run ended does nothing.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["RunHandle"]


class RunHandle(Protocol):
    """A one-shot run that another thread may stop (thread-safe ``stop``)."""

    @property
    def id(self) -> str:
        """The run's container id (as in its result, ``ps`` and ``kill``)."""
        ...

    def stop(self) -> None:
        """Kill the run's command and everything in its container; the run ends 137."""
        ...
