"""Reading YAML within bounds: a size-capped read of regular files only, and a tree walk that
caps nesting and alias expansion, so no input can hang the reader or exhaust its memory.

The document is composed by ruamel.yaml's pure-Python safe composer (its round-trip scanner
gathers a comment one character at a time into a growing string, quadratic in the length of a
comment line: a 1 MB comment took 19.5 s) and the node tree is then copied into plain dicts and
lists here, noting the line each key sits on. Every node visited counts against
``MAX_NODES``, so an alias that repeats a subtree costs what it expands to: an "anchor bomb"
stops at the cap instead of growing without bound later, when the tree is validated.
Messages say what was expected and where, never what the file holds.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer, MaxDepthExceededError
from ruamel.yaml.constructor import SafeConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from sandpool.errors import ConfigFileError

__all__ = [
    "MAX_CONFIG_BYTES",
    "MAX_DEPTH",
    "MAX_NODES",
    "MERGE_KEY",
    "KeyPath",
    "Origins",
    "compose",
    "decode",
    "is_plain_name",
    "kind_of",
    "parse_document",
    "parse_value",
    "read_config_bytes",
]

MAX_CONFIG_BYTES = 1 << 20  # 1 MiB per configuration file
MAX_NODES = 10_000  # keys, items and values, per document, aliases expanded
MAX_DEPTH = 32  # nested mappings and lists
MERGE_KEY = "<<"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")

_TOO_MANY = f"more than {MAX_NODES} keys and values (aliases expanded)"

KeyPath = tuple[str, ...]
Origins = dict[KeyPath, str]


def read_config_bytes(path: str | Path) -> bytes:
    """The bytes of a configuration file: a regular file of at most ``MAX_CONFIG_BYTES``.

    Opened without blocking (a FIFO would wait for a writer) and checked with fstat before
    anything is read, so a device, FIFO or directory is refused at once.
    """
    p = Path(path)
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(p, flags)
    except FileNotFoundError as exc:
        hint = "check the path given with -c or $SANDPOOL_CONFIG"
        raise ConfigFileError(f"configuration file not found: {p}", hint=hint) from exc
    except OSError as exc:
        raise ConfigFileError(f"cannot read configuration file {p}: {exc.strerror}") from exc
    try:
        return _read_regular(fd, p)
    finally:
        os.close(fd)


def _read_regular(fd: int, path: Path) -> bytes:
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigFileError(
                f"configuration file {path} is not a regular file",
                hint="name a YAML file, not a device, FIFO or directory",
            )
        chunks, size = [], 0
        while size <= MAX_CONFIG_BYTES and (chunk := os.read(fd, 1 << 16)):
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise ConfigFileError(f"cannot read configuration file {path}: {exc.strerror}") from exc
    if size > MAX_CONFIG_BYTES:
        raise ConfigFileError(
            f"configuration file {path} is larger than 1 MiB",
            hint="a configuration file may hold at most 1 MiB",
        )
    return b"".join(chunks)


def decode(data: bytes, where: str) -> str:
    """UTF-8 text; bytes that are not name their line and column, not a byte offset."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigFileError(
            f"{where} line {line} column {column}: not UTF-8 text", hint="save the file as UTF-8"
        ) from None


def kind_of(value: Any) -> str:
    """What a YAML value is, in words (never the value itself)."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if value is None:
        return "nothing (null)"
    return "a text" if isinstance(value, str) else "a YAML value of another type"


def _problem(exc: YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    line = f" line {mark.line + 1}" if mark is not None else ""
    problem = exc.problem if isinstance(exc, MarkedYAMLError) and exc.problem else "bad syntax"
    if len(problem) > 80:  # ruamel quotes tokens of the file; keep that short
        problem = problem[:77] + "..."
    return f"{line}: malformed YAML: {problem}"


class _TooManyNodes(MarkedYAMLError):
    """Raised by ``_BoundedComposer`` past ``MAX_NODES``."""


class _BoundedComposer(Composer):
    """ruamel's composer, stopped after ``MAX_NODES`` nodes: parsing is pure Python (tens of
    microseconds a node), so a 1 MiB list of small items would otherwise take a minute."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        self.warn_double_anchors = False  # its warning quotes the file's lines on stderr
        self.node_count = getattr(self, "node_count", 0) + 1
        if self.node_count > MAX_NODES:
            mark = self.parser.peek_event().start_mark
            raise _TooManyNodes(problem=_TOO_MANY, problem_mark=mark)
        return super().compose_node(parent, index)


def new_yaml() -> YAML:
    """A pure-Python safe loader whose composer stops at the depth and node caps."""
    yaml = YAML(typ="safe", pure=True)
    yaml.Composer = _BoundedComposer
    yaml.max_depth = MAX_DEPTH
    return yaml


def compose(text: str, where: str, yaml: YAML | None = None) -> Node | None:
    """The node tree of one YAML document; malformed YAML is a ConfigFileError with a line."""
    try:
        node: Node | None = (yaml or new_yaml()).compose(text)
        return node
    except MaxDepthExceededError as exc:
        mark = exc.problem_mark
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigFileError(
            f"{where}{line}: nested too deeply",
            hint=f"at most {MAX_DEPTH} levels of mappings and lists",
        ) from exc
    except YAMLError as exc:
        raise ConfigFileError(f"{where}{_problem(exc)}") from exc
    except RecursionError as exc:
        raise ConfigFileError(
            f"{where}: nested too deeply", hint=f"at most {MAX_DEPTH} levels of mappings and lists"
        ) from exc


class _Walk:
    """One copy of a node tree into plain data, with its node budget and origins."""

    def __init__(self, where: str, yaml: YAML) -> None:
        self.where = where
        self.origins: Origins = {}
        self.nodes = 0
        self.scalars: SafeConstructor = yaml.constructor

    def fail(self, node: Node, what: str, hint: str | None = None) -> ConfigFileError:
        return ConfigFileError(f"{self.where} line {node.start_mark.line + 1}: {what}", hint=hint)

    def value(self, node: Node, path: KeyPath, depth: int = 0) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.fail(node, _TOO_MANY)
        if depth > MAX_DEPTH:
            raise self.fail(node, "nested too deeply", f"at most {MAX_DEPTH} levels")
        if isinstance(node, MappingNode):
            return self.mapping(node, path, depth + 1)
        if isinstance(node, SequenceNode):
            return [self.value(item, path, depth + 1) for item in node.value]
        try:
            return self.scalars.construct_object(node, deep=True)
        except (YAMLError, ValueError, TypeError, OverflowError) as exc:
            raise self.fail(node, "a value that cannot be read (a bad tag or number)") from exc

    def key(self, node: Node) -> str:
        if not isinstance(node, ScalarNode):
            raise self.fail(node, "a key must be a plain word, not a mapping or list")
        try:
            key = self.scalars.construct_object(node)
        except (YAMLError, ValueError, TypeError, OverflowError) as exc:
            raise self.fail(node, "a key that cannot be read (a bad tag or number)") from exc
        return str(key).lower() if isinstance(key, bool) else str(key)

    def mapping(self, node: MappingNode, path: KeyPath, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        merged: list[dict[str, Any]] = []
        for key_node, value_node in node.value:
            if key_node.tag.endswith(":merge"):  # ``<<: *anchor``
                merged.extend(self.merge_sources(value_node, path, depth))
                continue
            key = self.key(key_node)
            if key in out:
                raise self.fail(key_node, "a key appears twice in one mapping", "keep one of them")
            sub = (*path, key)
            self.origins[sub] = f"{self.where} line {key_node.start_mark.line + 1}"
            out[key] = self.value(value_node, sub, depth)
        for source in merged:  # YAML merge keys: the mapping's own keys win
            out = {**source, **out}
        return out

    def merge_sources(self, node: Node, path: KeyPath, depth: int) -> list[dict[str, Any]]:
        items = node.value if isinstance(node, SequenceNode) else [node]
        sources = [self.value(item, path, depth) for item in items]
        if not all(isinstance(s, dict) for s in sources):
            raise self.fail(node, "'<<' must merge a mapping or a list of mappings")
        return sources


def parse_document(text: str, where: str) -> tuple[dict[str, Any], Origins]:
    """One YAML document as plain data with the origin of every key; the top must be a mapping."""
    yaml = new_yaml()
    root = compose(text, where, yaml)
    if root is None:
        return {}, {}
    walk = _Walk(where, yaml)
    tree = walk.value(root, ())
    if not isinstance(tree, dict):
        raise ConfigFileError(
            f"{where}: expected a mapping (key: value lines) at the top, got {kind_of(tree)}"
        )
    return tree, walk.origins


def parse_value(text: str, where: str) -> Any:
    """One YAML scalar or flow collection (an environment variable's value), within bounds."""
    yaml = new_yaml()
    root = compose(text, where, yaml)
    return None if root is None else _Walk(where, yaml).value(root, ())


def is_plain_name(key: str) -> bool:
    """Whether a key is a short plain name that a message may repeat."""
    return _NAME.fullmatch(key) is not None
