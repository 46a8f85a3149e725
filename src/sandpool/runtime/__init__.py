"""Container runtimes: one interface over the real `runc` and `runsc` binaries, and the one
subprocess runner every invocation goes through."""

from sandpool.runtime.base import Capability, ContainerRuntime, ContainerState
from sandpool.runtime.factory import create_runtime

__all__ = ["Capability", "ContainerRuntime", "ContainerState", "create_runtime"]
