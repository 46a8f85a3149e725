"""Migration: rewrite Beta9's old worker-pool field names to the new ones, keeping everything else.

Two rules, applied to every pool under ``worker.pools``:
  * ``runtimeConfig`` is the old name of ``containerRuntimeConfig``: the key is renamed in place;
  * ``runtime: runc|gvisor`` in a pool that sets no ``containerRuntime`` is the old meaning of
    ``runtime`` (the container runtime, not the pod RuntimeClass): the key becomes
    ``containerRuntime`` and the pod runtime is left unset.

The document is composed into YAML nodes (bounded, see ``yaml_tree``), which say where every
key sits; the rename then edits only those key tokens in the original text. Comments, key order,
quoting, indentation and every byte of untouched pools stay exactly as they were, which a full
re-dump would not guarantee (it reflows indentation and drops trailing whitespace).
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ruamel.yaml.nodes import MappingNode, Node, ScalarNode

from sandpool.config.models import ContainerRuntimeName
from sandpool.config.sources import parse_yaml
from sandpool.config.yaml_tree import MERGE_KEY, compose, decode, read_config_bytes
from sandpool.errors import ConfigFileError, ConfigValidationError

__all__ = ["Migration", "migrate", "read_config_text", "write_atomically"]

OLD_CONFIG_KEY = "runtimeConfig"
NEW_CONFIG_KEY = "containerRuntimeConfig"
OLD_RUNTIME_KEY = "runtime"
NEW_RUNTIME_KEY = "containerRuntime"
# ruamel.yaml's own line breaks (reader.py): a column is counted from the last of these.
_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


@dataclass(frozen=True)
class Rename:
    """One key token to rewrite: ``old`` at (line, column) becomes ``new``."""

    line: int
    column: int
    old: str
    new: str
    path: str


@dataclass(frozen=True)
class Migration:
    """The migrated text and one human-readable line per change made."""

    text: str
    changes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """Whether the migration rewrote anything."""
        return bool(self.changes)


def _own_keys(node: Node | None) -> dict[str, tuple[ScalarNode, Node]]:
    """The keys a mapping node writes itself (not those merged in with ``<<``)."""
    if not isinstance(node, MappingNode):
        return {}
    return {
        str(k.value): (k, v)
        for k, v in node.value
        if isinstance(k, ScalarNode) and k.value != MERGE_KEY
    }


def _rename(key: ScalarNode, path: str, old: str, new: str) -> Rename:
    return Rename(key.start_mark.line, key.start_mark.column, old, new, f"{path}.{old}")


def _pool_renames(name: str, pool: Node) -> list[Rename]:
    """The renames one pool needs; a pool that mixes old and new names is an error."""
    path = f"worker.pools.{name}"
    own = _own_keys(pool)
    renames = []
    if OLD_CONFIG_KEY in own:
        if NEW_CONFIG_KEY in own:
            raise ConfigValidationError(
                [
                    f"{path}: both '{OLD_CONFIG_KEY}' (the old name) and '{NEW_CONFIG_KEY}' are "
                    f"set; merge them by hand into '{NEW_CONFIG_KEY}' and delete '{OLD_CONFIG_KEY}'"
                ]
            )
        renames.append(_rename(own[OLD_CONFIG_KEY][0], path, OLD_CONFIG_KEY, NEW_CONFIG_KEY))
    legacy = {e.value for e in ContainerRuntimeName}
    runtime = own.get(OLD_RUNTIME_KEY)
    value = runtime[1] if runtime else None
    if isinstance(value, ScalarNode) and value.value in legacy and NEW_RUNTIME_KEY not in own:
        renames.append(_rename(own[OLD_RUNTIME_KEY][0], path, OLD_RUNTIME_KEY, NEW_RUNTIME_KEY))
    return renames


def _find_renames(tree: Node | None) -> list[Rename]:
    """Every rename in the document, each key once (a pool reached twice through an alias)."""
    worker = _own_keys(tree).get("worker") if tree is not None else None
    pools = _own_keys(worker[1]).get("pools") if worker else None
    renames = {}
    for name, (_, pool) in _own_keys(pools[1] if pools else None).items():
        for r in _pool_renames(name, pool):
            renames[(r.line, r.column)] = r
    return list(renames.values())


def _line_starts(text: str) -> list[int]:
    return [0, *(m.end() for m in _LINE_BREAK.finditer(text))]


def _apply(text: str, renames: list[Rename], where: str) -> str:
    """Rewrite the key tokens, last first so earlier offsets stay valid."""
    starts = _line_starts(text)
    for r in sorted(renames, key=lambda r: (r.line, r.column), reverse=True):
        offset = starts[r.line] + r.column
        quote = text[offset] if text[offset] in "'\"" else ""
        token = f"{quote}{r.old}{quote}"
        if not text.startswith(token, offset):
            raise ConfigFileError(
                f"{where} line {r.line + 1}: cannot rewrite key '{r.old}' (unusual spelling)",
                hint=f"rename it to '{r.new}' by hand",
            )
        text = text[:offset] + f"{quote}{r.new}{quote}" + text[offset + len(token) :]
    return text


def _describe(r: Rename) -> str:
    if r.old == OLD_RUNTIME_KEY:
        return (
            f"line {r.line + 1}: {r.path} -> {r.new} (the old meaning of '{r.old}'; "
            f"the pod runtime is now unset)"
        )
    return f"line {r.line + 1}: {r.path} -> {r.new} (renamed key)"


def migrate(text: str, where: str = "<text>") -> Migration:
    """Rewrite old field names in a configuration document; the text is otherwise untouched."""
    parse_yaml(text, where)  # malformed YAML or a non-mapping top level -> ConfigFileError
    renames = _find_renames(compose(text, where))
    if not renames:
        return Migration(text)
    ordered = sorted(renames, key=lambda r: (r.line, r.column))
    return Migration(_apply(text, renames, where), [_describe(r) for r in ordered])


def read_config_text(path: str | Path) -> str:
    """The text of a configuration file (bounded, see ``yaml_tree``), its line endings kept."""
    return decode(read_config_bytes(path), str(path))


def write_atomically(path: str | Path, text: str) -> None:
    """Replace the file's content in one step (temp file + rename), keeping its mode."""
    target = Path(path).resolve()  # through a symlink: rewrite the file, keep the link
    try:
        mode = target.stat().st_mode & 0o7777
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, mode)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        hint = "the file is unchanged"
        raise ConfigFileError(f"cannot write {target}: {exc}", hint=hint) from exc
