"""The seed document stays the source of truth: every ```yaml block in
``../shared/seed/runtime-configuration-explained.md`` loads and resolves as the text around it
says, each has an identical fixture in tests/fixtures/seed, and the decision tree and comparison
matrix match ``sandpool explain``. Skipped (with the reason) where the seed is absent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from sandpool.config import LoadedConfig, ResolvedPool
from sandpool.config.decision import MATRIX_HEADER, walk

REPO = Path(__file__).resolve().parents[3]
SEED = REPO.parent / "shared" / "seed" / "runtime-configuration-explained.md"
FIXTURES = REPO / "tests" / "fixtures" / "seed"

if not SEED.is_file():
    pytest.skip(
        f"seed document not found at {SEED} (it lives beside the repository, in ../shared/seed); "
        "tests/unit/config/test_seed_fixtures.py covers the same configurations from fixtures",
        allow_module_level=True,
    )

pytestmark = pytest.mark.seed
TEXT = SEED.read_text(encoding="utf-8")


@dataclass(frozen=True)
class SeedBlock:
    """One ```yaml block, the heading above it and the prose after it (to the next section)."""

    heading: str
    yaml: str
    after: str

    @property
    def is_fragment(self) -> bool:
        """The FAQ shows a bare ``pools:`` mapping, not a whole document."""
        return self.yaml.startswith("pools:")

    def document(self) -> str:
        """The block as a whole document; a ``pools:`` fragment is wrapped under ``worker:``."""
        if not self.is_fragment:
            return self.yaml
        indented = "".join(
            "  " + line if line.strip() else line for line in self.yaml.splitlines(True)
        )
        return "worker:\n" + indented


def seed_blocks() -> list[SeedBlock]:
    """Every ```yaml block of the seed, in order."""
    blocks = []
    for match in re.finditer(r"```yaml\n(.*?)```", TEXT, re.S):
        headings = re.findall(r"^#+ (.+)$", TEXT[: match.start()], re.M)
        rest = TEXT[match.end() :]
        end = re.search(r"^(#+ |---)", rest, re.M)
        after = rest[: end.start()] if end else rest
        blocks.append(SeedBlock(headings[-1], match.group(1), after))
    return blocks


BLOCKS = seed_blocks()
IDS = [f"{i + 1:02d}-{b.heading}" for i, b in enumerate(BLOCKS)]


def load(block: SeedBlock, tmp_path: Path) -> LoadedConfig:
    path = tmp_path / "seed-block.yaml"
    path.write_text(block.document(), encoding="utf-8")
    return LoadedConfig.load([str(path)], {})


def pool_lines(block: SeedBlock) -> dict[str, range]:
    """Each pool's name -> the 0-based lines that belong to it, comments just above it included."""
    lines = block.yaml.splitlines()
    tree = YAML(typ="rt").load(block.yaml)
    pools = tree["pools"] if block.is_fragment else tree["worker"]["pools"]
    starts = []
    for name in pools:
        start = pools.lc.key(name)[0]
        while start > 0 and lines[start - 1].strip().startswith("#"):
            start -= 1
        starts.append((start, str(name)))
    ends = [line for line, _ in starts[1:]] + [len(lines)]
    return {name: range(start, end) for (start, name), end in zip(starts, ends, strict=True)}


def test_seed_has_the_blocks_we_expect() -> None:
    # A new example in the seed needs a fixture and expectations: this count says so.
    assert len(BLOCKS) == 13


@pytest.mark.parametrize("block", BLOCKS, ids=IDS)
def test_block_has_an_identical_fixture(block: SeedBlock) -> None:
    fixtures = {p.name: p.read_text(encoding="utf-8") for p in FIXTURES.glob("*.yaml")}
    matches = [name for name, text in fixtures.items() if block.document() in text]
    assert matches, f"no fixture in {FIXTURES} holds the seed block under '{block.heading}'"


@pytest.mark.parametrize("block", BLOCKS, ids=IDS)
def test_block_resolves_what_it_writes_and_defaults_the_rest(
    block: SeedBlock, tmp_path: Path
) -> None:
    loaded = load(block, tmp_path)
    assert loaded.warnings == []
    tree = YAML(typ="safe").load(block.document())
    for name, raw in tree["worker"]["pools"].items():
        pool = loaded.resolved.pools[name].public_dict()
        rc = raw.get("containerRuntimeConfig", {})
        # FAQ: `runtime` empty = K8s default (null); `containerRuntime` runc if not specified.
        assert pool["runtime"] == raw.get("runtime")
        assert pool["containerRuntime"] == raw.get("containerRuntime", "runc")
        assert pool["containerRuntimeConfig"]["gvisorPlatform"] == rc.get("gvisorPlatform")
        assert pool["containerRuntimeConfig"]["gvisorRoot"] == rc.get("gvisorRoot", "/run/gvisor")
        assert pool["mode"] == raw.get("mode", "local")
        assert pool["gpuType"] == raw.get("gpuType", "")


# Claims in the prose and in the YAML comments, and the fact about the pool each one implies.
RESULT_CLAIMS = {
    "Pod: Runs with default Kubernetes runtime": ("runtime", None),
    "Pod: Runs with NVIDIA Container Runtime": ("runtime", "nvidia"),
    "User containers: Run with runc": ("container_runtime", "runc"),
    "User containers: Run in gVisor sandbox": ("container_runtime", "gvisor"),
}
COMMENT_CLAIMS = {
    r"no (special )?pod runtime": ("runtime", None),
    r"Pod (runs with NVIDIA|needs GPU)": ("runtime", "nvidia"),
    r"User containers (use|run in) gVisor": ("container_runtime", "gvisor"),
    r"User containers use runc": ("container_runtime", "runc"),
    r"Strong isolation|User isolation": ("container_runtime", "gvisor"),
    r"Max performance|Fast, direct": ("container_runtime", "runc"),
    r"sandboxed|with security": ("container_runtime", "gvisor"),
    r"^ GPU with": ("runtime", "nvidia"),
}


def claimed(pool: ResolvedPool, fact: tuple[str, str | None]) -> bool:
    attribute, value = fact
    return bool(getattr(pool, attribute) == value)


def test_result_lines_hold(tmp_path: Path) -> None:
    checked = 0
    for block in BLOCKS:
        if "**Result:**" not in block.after:
            continue
        (pool,) = load(block, tmp_path).resolved.pools.values()
        for line in re.findall(r"^- (.+)$", block.after, re.M):
            facts = [f for claim, f in RESULT_CLAIMS.items() if line.startswith(claim)]
            assert facts, f"unrecognised Result line under '{block.heading}': {line}"
            assert claimed(pool, facts[0]), f"'{block.heading}': {line}"
            checked += 1
    assert checked == 8  # the four Common Configurations, two lines each


def comment_claims(block: SeedBlock) -> list[tuple[str, str, tuple[str, str | None]]]:
    """(pool, line, fact) for every YAML comment of the block that makes a claim."""
    lines = block.yaml.splitlines()
    found = []
    for name, span in pool_lines(block).items():
        for number in span:
            comment = lines[number].partition("#")[2]
            for pattern, fact in COMMENT_CLAIMS.items():
                if re.search(pattern, comment, re.I):
                    found.append((name, lines[number].strip(), fact))
    return found


def test_yaml_comments_hold(tmp_path: Path) -> None:
    checked = 0
    for block in BLOCKS:
        pools = load(block, tmp_path).resolved.pools
        for name, line, fact in comment_claims(block):
            assert claimed(pools[name], fact), f"'{block.heading}', pool {name}: {line}"
            checked += 1
    assert checked == 23  # every claim-making comment of the seed; a new one must be mapped


def test_faq_defaults_hold(tmp_path: Path) -> None:
    faq = TEXT[TEXT.index("### Q: What's the default") :]
    assert re.search(r"`runtime`: Empty", faq)
    assert re.search(r"`containerRuntime`: `runc` \(if not specified\)", faq)
    path = tmp_path / "bare.yaml"
    path.write_text("worker:\n  pools:\n    bare: {}\n")
    pool = LoadedConfig.load([str(path)], {}).resolved.pools["bare"].public_dict()
    assert (pool["runtime"], pool["containerRuntime"]) == (None, "runc")


def matrix_rows() -> list[tuple[str, ...]]:
    section = TEXT[TEXT.index("## Comparison Matrix") :]
    rows = re.findall(r"^\|(.+)\|\s*$", section.split("\n## ")[0], re.M)
    cells = [tuple(c.strip() for c in row.split("|")) for row in rows]
    return [c for c in cells if not set("".join(c)) <= set("-")]


def test_explain_matrix_is_the_seeds() -> None:
    header, *rows = matrix_rows()
    assert header == MATRIX_HEADER
    assert [o.row.cells() for o in walk(None, None)] == rows


def test_explain_follows_the_decision_tree() -> None:
    tree = TEXT[TEXT.index("## Decision Tree") : TEXT.index("## Comparison Matrix")]
    assert "GPU access?" in tree and "runtime: nvidia" in tree and "(no pod runtime)" in tree
    assert re.search(r"containerRuntime:\s+containerRuntime:\s+gvisor\s+runc", tree)
    for outcome in walk(None, None):
        assert outcome.runtime == ("nvidia" if outcome.gpu else None)
        assert outcome.container_runtime == ("gvisor" if outcome.isolation else "runc")
