"""The seed's decision tree: two questions lead to a pod runtime, a container runtime and a pool.

Question 1 (does the pool need GPU access?) picks the pod runtime: ``nvidia`` or none.
Question 2 (do user containers need isolation?) picks the container runtime: ``gvisor`` or ``runc``.
An unanswered question keeps both branches, so the walk returns one to four outcomes. Pool names
are those of the seed's "Example 4: Mixed Environment", which is also how sandpool's embedded
default names its runc pool (``performance``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MATRIX_HEADER", "QUESTIONS", "MatrixRow", "Outcome", "Question", "pools_yaml", "walk"]

MATRIX_HEADER = ("Pod Runtime", "Container Runtime", "GPU", "Isolation", "Performance", "Use Case")


@dataclass(frozen=True)
class Question:
    """One question of the tree, the flag that answers it and what each answer sets."""

    text: str
    flag: str
    if_yes: str
    if_no: str


QUESTIONS = (
    Question(
        "Does the POOL need GPU access?",
        "gpu",
        "runtime: nvidia  (the worker pod runs with the NVIDIA Container Runtime)",
        "no pod runtime  (the worker pod runs with the cluster's default runtime)",
    ),
    Question(
        "Do USER containers need isolation?",
        "isolation",
        "containerRuntime: gvisor  (user containers run in the gVisor sandbox)",
        "containerRuntime: runc  (user containers run with runc, the fastest)",
    ),
)


@dataclass(frozen=True)
class MatrixRow:
    """One row of the seed's comparison matrix, cells exactly as the seed writes them."""

    pod_runtime: str
    container_runtime: str
    gpu: str
    isolation: str
    performance: str
    use_case: str

    def cells(self) -> tuple[str, ...]:
        """The cells in the seed's column order (see MATRIX_HEADER)."""
        return (
            self.pod_runtime,
            self.container_runtime,
            self.gpu,
            self.isolation,
            self.performance,
            self.use_case,
        )


@dataclass(frozen=True)
class Outcome:
    """Where one pair of answers leads: the pool to configure and its matrix row."""

    gpu: bool
    isolation: bool
    pool_name: str
    runtime: str | None
    container_runtime: str
    row: MatrixRow


_OUTCOMES = {
    (False, False): Outcome(
        False,
        False,
        "performance",
        None,
        "runc",
        MatrixRow("(default)", "runc", "❌", "Low", "⭐⭐⭐⭐⭐", "Standard workloads"),
    ),
    (False, True): Outcome(
        False,
        True,
        "sandbox",
        None,
        "gvisor",
        MatrixRow("(default)", "gvisor", "❌", "High", "⭐⭐⭐⭐", "Secure workloads"),
    ),
    (True, False): Outcome(
        True,
        False,
        "gpu-fast",
        "nvidia",
        "runc",
        MatrixRow("nvidia", "runc", "✅", "Low", "⭐⭐⭐⭐⭐", "Max GPU performance"),
    ),
    (True, True): Outcome(
        True,
        True,
        "gpu-secure",
        "nvidia",
        "gvisor",
        MatrixRow("nvidia", "gvisor", "✅", "High", "⭐⭐⭐⭐", "Secure GPU workloads"),
    ),
}


def walk(gpu: bool | None, isolation: bool | None) -> list[Outcome]:
    """The outcomes the answers lead to; ``None`` (unanswered) keeps both branches."""
    gpu_answers = [False, True] if gpu is None else [gpu]  # the seed's matrix order
    isolation_answers = [False, True] if isolation is None else [isolation]
    return [_OUTCOMES[(g, i)] for g in gpu_answers for i in isolation_answers]


def _pool_lines(outcome: Outcome) -> list[str]:
    """One pool in the seed's style; gVisor's platform is left to sandpool's default."""
    lines = [f"    {outcome.pool_name}:", "      mode: local"]
    if outcome.gpu:
        lines.append("      gpuType: T4  # the GPU model of your nodes")
        lines.append("      runtime: nvidia  # Pod needs GPU access")
    else:
        lines.append("      # No pod runtime specified (use K8s default)")
    if outcome.container_runtime == "runc":
        lines.append("      containerRuntime: runc  # User containers use runc")
        return lines
    return [
        *lines,
        "      containerRuntime: gvisor  # User containers use gVisor",
        "      containerRuntimeConfig:",
        "        # gvisorPlatform: systrap  # default where the installed runsc has it",
        "        gvisorRoot: /run/gvisor",
    ]


def pools_yaml(outcomes: list[Outcome]) -> str:
    """A complete configuration document with one pool per outcome."""
    lines = ["worker:", "  pools:"]
    for outcome in outcomes:
        lines.extend(_pool_lines(outcome))
    return "\n".join(lines) + "\n"
