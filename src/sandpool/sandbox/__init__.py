"""Long-lived sandboxes on a worker: create, exec, files, pause, TTL/idle, adoption.

``manager.SandboxManager`` is the by-id interface (what a service drives); ``handle.Sandbox``
the Python handle ``Sandpool.create_sandbox`` returns; ``launch`` starts and removes a
sandbox's container with ``worker.container``'s preparation; ``live`` holds one sandbox's
state; ``execs`` runs one process in it; ``files`` reaches its filesystem from inside;
``output`` keeps an exec's output, bounded and replayable; ``init.c`` is its PID 1; ``warm``
keeps each pool's ``warmPool`` of sandboxes started ahead for creates to claim; ``usage``
reads what one uses (cpu, memory, disk).
"""

from sandpool.sandbox.files import FileEntry
from sandpool.sandbox.handle import Sandbox
from sandpool.sandbox.manager import SandboxManager
from sandpool.sandbox.models import (
    EndReason,
    ExecRequest,
    ExecResult,
    OutputEvent,
    SandboxInfo,
    SandboxRequest,
    SandboxState,
)

__all__ = [
    "EndReason",
    "ExecRequest",
    "ExecResult",
    "FileEntry",
    "OutputEvent",
    "Sandbox",
    "SandboxInfo",
    "SandboxManager",
    "SandboxRequest",
    "SandboxState",
]
