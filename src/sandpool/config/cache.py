"""A cache of resolved configurations, so that ``sandpool run`` skips YAML and pydantic.

The key covers everything a resolved configuration depends on: the path, inode, mtime and
size of each configuration file read (or of the embedded default), the ``SANDPOOL_*``
environment, and the same stamp of the config package's own source files (an upgrade changes
validation). A hit is one ``stat`` per input and a JSON parse; a miss, an unreadable entry or
an unusable cache directory fall back to ``LoadedConfig.load``, whose errors are unchanged
(invalid configurations are never cached). Entries live in ``/run/sandpool/cache`` for root
(``$XDG_RUNTIME_DIR/sandpool/cache`` otherwise; no cache without either), a directory that
must be owned by the caller and not writable by others, and are written by atomic rename, so
concurrent processes are safe.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from sandpool.config.paths import config_paths
from sandpool.config.resolved import ResolvedConfig
from sandpool.hostdirs import runtime_dir

__all__ = ["cache_dir", "file_stamp", "load_resolved", "write_entry"]

_VERSION = "1"
_PACKAGE = Path(__file__).resolve().parent
_CODE = ("cache.py", "gvisor_flags.py", "loader.py", "models.py", "paths.py", "quantities.py",
         "resolved.py", "sources.py", "validation.py", "yaml_tree.py")  # fmt: skip
_EMBEDDED = _PACKAGE / "default.yaml"


def cache_dir(environ: Mapping[str, str] | None = None) -> Path | None:
    """Where cache entries go for this user, created if needed; None when none is safe."""
    base = runtime_dir(os.environ if environ is None else environ)
    if base is None:
        return None
    path = Path(base) / "cache"
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = path.stat()
    except OSError:
        return None
    return path if st.st_uid == os.geteuid() and not st.st_mode & 0o022 else None


def file_stamp(path: Path) -> list[object]:
    """What identifies one version of a file: path, inode, mtime and size (OSError if gone)."""
    st = os.stat(path)
    return [str(path), st.st_ino, st.st_mtime_ns, st.st_size]


def cache_key(files: Sequence[str], environ: Mapping[str, str]) -> str | None:
    """The entry name for these inputs; None if a file cannot be stat'ed (the loader says why)."""
    try:
        inputs = [file_stamp(Path(f).resolve()) for f in files] or [file_stamp(_EMBEDDED)]
        code = [file_stamp(_PACKAGE / name) for name in _CODE]
    except OSError:
        return None
    env = sorted((k, v) for k, v in environ.items() if k.startswith("SANDPOOL_"))
    blob = json.dumps([_VERSION, inputs, code, env], separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _read(entry: Path) -> ResolvedConfig | None:
    try:
        return ResolvedConfig.from_json(json.loads(entry.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_entry(entry: Path, data: object) -> None:
    """Write ``data`` as JSON to ``entry`` by atomic rename; a failure just leaves no entry."""
    with contextlib.suppress(OSError):
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=entry.parent)
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(data, handle)
            os.replace(tmp, entry)
        finally:
            Path(tmp).unlink(missing_ok=True)


def load_resolved(paths: Sequence[str] = (), environ: Mapping[str, str] | None = None,
                  *, directory: Path | None = None) -> ResolvedConfig:  # fmt: skip
    """``LoadedConfig.load(paths, environ).resolved``, from the cache when the inputs are
    unchanged. ``directory`` overrides ``cache_dir()`` (tests)."""
    environ = os.environ if environ is None else environ
    folder = directory or cache_dir(environ)
    key = cache_key(config_paths(paths, environ), environ) if folder else None
    entry = folder / f"{key}.json" if folder and key else None
    cached = _read(entry) if entry else None
    if cached is not None:
        return cached
    from sandpool.config.loader import LoadedConfig

    resolved = LoadedConfig.load(paths, environ).resolved
    if entry is not None:
        write_entry(entry, resolved.to_json())
    return resolved
