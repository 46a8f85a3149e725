"""The configuration loader against random and adversarial input (issue 13).

Seeded, so every run tries the same inputs. Each input must either load or raise a
``ConfigError`` with a short, clear message; nothing else may escape (no traceback), each
load must finish within ``TIME_LIMIT`` seconds, and the adversarial ones (bombs, deep nesting,
huge scalars) within ``MEMORY_LIMIT`` bytes of Python allocations.
"""

from __future__ import annotations

import random
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from sandpool.config import LoadedConfig
from sandpool.config.models import PoolConfig, SandpoolConfig, WorkerConfig, model_in
from sandpool.errors import ConfigError

SEED = 1313
TIME_LIMIT = 2.0  # CPU seconds per input (CPU, not wall-clock: the test machine is shared)
MEMORY_LIMIT = 64 << 20  # bytes of Python allocations per adversarial input
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "seed"

# YAML snippets that are odd for (almost) every key: wrong types, non-finite and huge numbers,
# tags, NULs, paths that climb, nesting, aliases, long text.
ODD_VALUES = [
    "", "~", "[]", "{}", "[[[[]]]]", "{a: {b: {c: {}}}}", "-1", "0", "2147483648",
    "99999999999999999999999999", "1e400", "-1e400", ".nan", "-.inf", ".inf", "0x1F", "true",
    "'\\0'", '"\\x00"', '"\\u202e"', "../..", "/", "//", "/a/../b", "é", "2001-12-14",
    "!!binary aGVsbG8=", "!!python/object:os.system x", "!!int x", "!!float abc", "*nowhere",
    "&a [*a]", "&b {x: *b}", "'" + "x" * 50_000 + "'", "[" + ", ".join(["-1"] * 300) + "]",
    "512Mi", "-5Mi", "abc", "1.5", "--network=host", "[--debug, --network=host]",
]  # fmt: skip


def key_paths(model: type[BaseModel] = SandpoolConfig, prefix: tuple[str, ...] = ()
              ) -> Iterator[tuple[str, ...]]:  # fmt: skip
    """Every key path of the schema (with one pool called ``p``)."""
    for name, info in model.model_fields.items():
        path = (*prefix, info.alias or name)
        yield path
        if model is WorkerConfig and name == "pools":
            yield from key_paths(PoolConfig, (*path, "p"))
            continue
        sub = model_in(info.annotation)
        if sub is not None:
            yield from key_paths(sub, path)


def document(path: tuple[str, ...], value: str) -> str:
    """A block document that sets ``path`` to the YAML snippet ``value``."""
    lines = [f"{'  ' * depth}{key}:" for depth, key in enumerate(path[:-1])]
    return "\n".join([*lines, f"{'  ' * (len(path) - 1)}{path[-1]}: {value}"]) + "\n"


def env_name(path: tuple[str, ...]) -> str:
    return "SANDPOOL_" + "_".join(p.upper() for p in path)


def checked(load: Callable[..., Any], *args: Any, memory: bool = False) -> None:
    """Run one load: it succeeds or raises a ConfigError with a clear message, in bounds."""
    if memory:
        tracemalloc.start()
    started = time.process_time()
    try:
        load(*args)
    except ConfigError as error:
        message = str(error)
        assert message.strip() and len(message) < 20_000
        for internal in ("Traceback", "Commented", "<class", "object at 0x"):
            assert internal not in message, message
    finally:
        took = time.process_time() - started
        peak = tracemalloc.get_traced_memory()[1] if memory else 0
        if memory:
            tracemalloc.stop()
    assert took < TIME_LIMIT, f"took {took:.1f}s"
    assert peak < MEMORY_LIMIT, f"allocated {peak >> 20} MiB"


def load_text(tmp_path: Path, data: str | bytes, env: dict[str, str] | None = None) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)
    LoadedConfig.load([str(path)], env or {})


def test_random_bytes_and_token_soup(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    alphabet = ":-[]{}&*!|>'\"#%@`,? \n\t\r\\x0aZé<=.~"
    for _ in range(150):
        raw = rng.randbytes(rng.randrange(0, 3000))
        checked(load_text, tmp_path, raw)
        soup = "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 800)))
        checked(load_text, tmp_path, "worker:\n  pools:\n    p:\n      " + soup)


def test_mutated_seed_configurations(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    originals = [p.read_bytes() for p in sorted(FIXTURES.glob("*.yaml"))]
    for _ in range(200):
        data = bytearray(rng.choice(originals))
        for _ in range(rng.randrange(1, 6)):
            at = rng.randrange(len(data))
            action = rng.randrange(3)
            if action == 0:
                data[at] = rng.randrange(256)
            elif action == 1:
                data[at:at] = rng.choice([b":", b"\n", b"  ", b"- ", b"[", b"&a ", b"*a", b"<<: "])
            else:
                del data[at : at + rng.randrange(1, 20)]
        checked(load_text, tmp_path, bytes(data))


@pytest.mark.parametrize("value", ODD_VALUES, ids=lambda v: repr(v[:20]))
def test_odd_values_at_every_key(tmp_path: Path, value: str) -> None:
    for path in key_paths():
        checked(load_text, tmp_path, document(path, value))


def test_odd_environment_values_at_every_key(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    base = tmp_path / "base.yaml"
    base.write_text("worker:\n  pools:\n    p: {}\n")
    for path in key_paths():
        for value in [*rng.sample(ODD_VALUES, 8), "\x7f", "a" * 20_000]:
            checked(LoadedConfig.load, [str(base)], {env_name(path): value})


def bombs() -> Iterator[str]:
    """Inputs built to exhaust time or memory."""
    anchors = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    anchors += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 12)]
    yield "\n".join(anchors) + "\nworker: {pools: {p: {gpuType: *a11}}}\n"
    maps = ["m0: &m0 {k: v}"]
    maps += [f"m{i}: &m{i} {{" + ", ".join(f"k{j}: *m{i - 1}" for j in range(10)) + "}"
             for i in range(1, 12)]  # fmt: skip
    yield "\n".join(maps) + "\nworker: *m11\n"
    merges = ["b0: &b0 {k0: v}"]
    merges += [f"b{i}: &b{i} {{<<: [*b{i - 1}, *b{i - 1}], k{i}: v}}" for i in range(1, 40)]
    yield "\n".join(merges) + "\nworker: {}\n"
    yield "worker: &w {pools: *w}\n"
    yield "worker: " + "[" * 10_000 + "]" * 10_000 + "\n"
    yield "worker: " + "{a: " * 20_000 + "1" + "}" * 20_000 + "\n"
    yield "".join(f"{' ' * i}k{i}:\n" for i in range(2000))
    yield "# " + "x" * 1_000_000 + "\nworker: {}\n"
    yield "worker:\n  defaultImage: '" + "y" * 1_000_000 + "'\n"
    yield "worker:\n  pools:\n" + "".join(f"    p{i}: {{}}\n" for i in range(40_000))
    yield "worker: [" + "1," * 500_000 + "]\n"
    yield "x: " + "&a [" * 500 + "]" * 500 + "\n"


@pytest.mark.parametrize("index", range(12))
def test_adversarial_inputs_stay_in_bounds(tmp_path: Path, index: int) -> None:
    text = list(bombs())[index]
    # memory is traced for the small inputs (the bombs); tracing slows a 1 MiB text tenfold
    checked(load_text, tmp_path, text, memory=len(text) < 300_000)


def test_env_bombs_stay_in_bounds() -> None:
    var = "SANDPOOL_WORKER_POOLS_P_CONTAINERRUNTIMECONFIG_GVISOREXTRAARGS"
    items = ["&a0 [x, x, x, x, x, x, x, x, x, x]"]
    items += [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    for value in ("[" + ", ".join(items) + "]", "[" * 5_000):
        checked(LoadedConfig.load, [], {var: value}, memory=True)
