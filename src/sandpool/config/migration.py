"""Migration: rewrite Beta9's old worker-pool field names to the new ones, keeping everything else.

Two rules, applied to every pool under ``worker.pools``:
  * ``runtimeConfig`` is the old name of ``containerRuntimeConfig``: the key is renamed in place;
  * ``runtime: runc|gvisor`` in a pool that sets no ``containerRuntime`` is the old meaning of
    ``runtime`` (the container runtime, not the pod RuntimeClass): the key becomes
    ``containerRuntime`` and the pod runtime is left unset.

The document is parsed with ruamel.yaml's round-trip loader, which reports where every key sits;
the rename then edits only those key tokens in the original text. Comments, key order, quoting,
indentation and every byte of untouched pools stay exactly as they were, which a full re-dump
would not guarantee (it reflows indentation and drops trailing whitespace).
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from sandpool.config.models import ContainerRuntimeName
from sandpool.config.sources import parse_yaml
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


def _rename(pool: CommentedMap, path: str, old: str, new: str) -> Rename:
    line, column = pool.lc.key(old)
    return Rename(line, column, old, new, f"{path}.{old}")


def _pool_renames(name: str, pool: CommentedMap) -> list[Rename]:
    """The renames one pool needs; a pool that mixes old and new names is an error."""
    path = f"worker.pools.{name}"
    own = dict(pool.non_merged_items())
    renames = []
    if OLD_CONFIG_KEY in own:
        if NEW_CONFIG_KEY in own:
            raise ConfigValidationError(
                [
                    f"{path}: both '{OLD_CONFIG_KEY}' (the old name) and '{NEW_CONFIG_KEY}' are "
                    f"set; merge them by hand into '{NEW_CONFIG_KEY}' and delete '{OLD_CONFIG_KEY}'"
                ]
            )
        renames.append(_rename(pool, path, OLD_CONFIG_KEY, NEW_CONFIG_KEY))
    legacy = {e.value for e in ContainerRuntimeName}
    value = own.get(OLD_RUNTIME_KEY)
    if isinstance(value, str) and value in legacy and NEW_RUNTIME_KEY not in own:
        renames.append(_rename(pool, path, OLD_RUNTIME_KEY, NEW_RUNTIME_KEY))
    return renames


def _find_renames(tree: Any) -> list[Rename]:
    """Every rename in the document, in no particular order."""
    worker = tree.get("worker") if isinstance(tree, CommentedMap) else None
    pools = worker.get("pools") if isinstance(worker, CommentedMap) else None
    if not isinstance(pools, CommentedMap):
        return []
    renames = []
    for name, pool in pools.non_merged_items():
        if isinstance(pool, CommentedMap):
            renames.extend(_pool_renames(str(name), pool))
    return renames


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
    tree = YAML(typ="rt").load(text)
    renames = _find_renames(tree)
    if not renames:
        return Migration(text)
    ordered = sorted(renames, key=lambda r: (r.line, r.column))
    return Migration(_apply(text, renames, where), [_describe(r) for r in ordered])


def read_config_text(path: str | Path) -> str:
    """The text of a configuration file; a missing or unreadable one is a ConfigFileError."""
    p = Path(path)
    try:
        return p.read_bytes().decode("utf-8")  # bytes: keep the file's own line endings
    except FileNotFoundError as exc:
        raise ConfigFileError(f"configuration file not found: {p}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigFileError(f"cannot read configuration file {p}: {exc}") from exc


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
