"""The decision tree: answers -> pod runtime, container runtime, matrix row and a loadable pool."""

from __future__ import annotations

import pytest

from sandpool.config import LoadedConfig
from sandpool.config.decision import pools_yaml, walk
from sandpool.config.sources import parse_yaml

COMBINATIONS = [
    # gpu, isolation -> pool, pod runtime, container runtime, seed's use case
    (False, False, "performance", None, "runc", "Standard workloads"),
    (False, True, "sandbox", None, "gvisor", "Secure workloads"),
    (True, False, "gpu-fast", "nvidia", "runc", "Max GPU performance"),
    (True, True, "gpu-secure", "nvidia", "gvisor", "Secure GPU workloads"),
]


def load(text: str) -> LoadedConfig:
    doc, origins = parse_yaml(text, "explain")
    return LoadedConfig.from_document(doc, origins, ["explain"])


@pytest.mark.parametrize(("gpu", "isolation", "name", "runtime", "crt", "use_case"), COMBINATIONS)
def test_each_answer_pair_leads_to_its_pool(
    gpu: bool, isolation: bool, name: str, runtime: str | None, crt: str, use_case: str
) -> None:
    (outcome,) = walk(gpu, isolation)
    assert (outcome.pool_name, outcome.runtime, outcome.container_runtime) == (name, runtime, crt)
    assert outcome.row.use_case == use_case
    assert outcome.row.gpu == ("✅" if gpu else "❌")
    assert outcome.row.isolation == ("High" if isolation else "Low")
    pool = load(pools_yaml([outcome])).resolved.pool(name)
    assert (pool.runtime, pool.container_runtime, pool.mode) == (runtime, crt, "local")
    assert pool.gpu_type == ("T4" if gpu else "")
    assert pool.gvisor_root == "/run/gvisor"


def test_unanswered_questions_keep_both_branches_in_matrix_order() -> None:
    assert [o.pool_name for o in walk(True, None)] == ["gpu-fast", "gpu-secure"]
    assert [o.pool_name for o in walk(None, True)] == ["sandbox", "gpu-secure"]
    everything = walk(None, None)
    assert [o.pool_name for o in everything] == [c[2] for c in COMBINATIONS]
    assert list(load(pools_yaml(everything)).resolved.pools) == [c[2] for c in COMBINATIONS]
