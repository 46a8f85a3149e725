"""The read-only layer cache: references resolved to unpacked root filesystems, once per digest.

On disk, under ``STATE_DIR/images/``::

    index.json            reference key -> manifest digest (+ source stamp); digest -> config
    sha256/<hex>/rootfs/  one unpacked image, shared read-only by every container
    locks/                flock files: one per reference (pulls), one per digest (unpacks)
    tmp/<pid>-*/          staging of pulls in progress (removed by prune once their pid is gone)

``get`` on a cached reference reads only the index (re-parsed when it changed) and stats the
rootfs and, for local archives and layouts, the source file: no subprocess. A miss takes the
reference's lock, so concurrent first pulls of one image copy and unpack it once; a finished
rootfs appears by an atomic rename. An ImageStore is safe to share between threads and processes.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandpool.errors import ImageError, ImageNotFound, InvalidImage
from sandpool.images.index import ImageIndex, file_lock
from sandpool.images.reference import Reference, Transport, parse_reference

if TYPE_CHECKING:
    from sandpool.images.layout import ImageConfig

__all__ = ["DEFAULT_IMAGE", "DEFAULT_PULL_TIMEOUT", "Image", "ImageStore", "choose_reference"]

DEFAULT_IMAGE = "builtin:default"
DEFAULT_PULL_TIMEOUT = 600.0
_TAG = "image"


@dataclass(frozen=True)
class Image:
    """One cached image: its unpacked rootfs and the parts of its config a container needs."""

    reference: str
    digest: str
    rootfs: Path
    env: tuple[str, ...]
    working_dir: str
    user: str
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    size_bytes: int
    created: str = ""


def choose_reference(image: str | None, configured_default: str = "") -> str:
    """The reference a run uses: ``--image``, else ``worker.defaultImage``, else DEFAULT_IMAGE."""
    return image or configured_default or DEFAULT_IMAGE


def _source_stamp(ref: Reference) -> str | None:
    """What must not change for a cached local image to stay valid; checks it exists."""
    if ref.transport is Transport.BUILTIN:
        from sandpool.images.builtin import builtin

        return f"builtin:{builtin(ref.target).version}"
    path = ref.local_path
    if path is None:
        return None
    probe = os.path.join(path, "index.json") if ref.transport is Transport.OCI else path
    try:
        st = os.stat(probe)
    except FileNotFoundError:
        what = "OCI layout" if ref.transport is Transport.OCI and os.path.isdir(path) else "file"
        error = InvalidImage if what == "OCI layout" else ImageNotFound
        raise error(f"image {ref.text!r}: no such {what}: {probe}") from None
    except OSError as exc:
        raise ImageNotFound(f"image {ref.text!r}: cannot read {probe}: {exc.strerror}") from exc
    return f"{st.st_ino}:{st.st_mtime_ns}:{st.st_size}"


def _tree_size(root: Path) -> int:
    seen: set[tuple[int, int]] = set()
    total = 0
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            st = os.lstat(os.path.join(directory, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def _mounted_paths() -> str:
    try:
        return Path("/proc/self/mountinfo").read_text()
    except OSError:
        return ""


def _lower_of_a_container(state_dir: Path, image_dir: Path) -> bool:
    """Whether a container's overlay sits on this image through an idmapped lower layer (its
    mount names ``/proc/self/fd/N``, so it writes the image path into ``<id>/lower``)."""
    for marker in (state_dir / "containers").glob("*/lower"):
        with contextlib.suppress(OSError):
            if marker.read_text().startswith(str(image_dir) + "/"):
                return True
    return False


class ImageStore:
    """The image cache under ``state_dir/images``; see the module docstring for its layout."""

    def __init__(self, state_dir: Path, *, pull_timeout: float = DEFAULT_PULL_TIMEOUT) -> None:
        self.root = Path(state_dir) / "images"
        self.pull_timeout = pull_timeout
        self._index = ImageIndex(self.root)

    # -- reading -------------------------------------------------------------------------------

    def get(self, reference: str) -> Image:
        """The image ``reference`` names, pulled and unpacked on first use, cached after."""
        ref = parse_reference(reference)
        image = self._cached(ref)
        return image if image is not None else self._pull(ref, refresh=False)

    def pull(self, reference: str) -> Image:
        """Fetch ``reference`` again even if cached (a moved tag, a rebuilt archive)."""
        return self._pull(parse_reference(reference), refresh=True)

    def list(self) -> list[Image]:
        """Every cached image, one entry per reference (``<none>`` for unreferenced digests)."""
        data = self._index.read()
        images: list[Image] = []
        for key, entry in sorted(data["references"].items()):
            image = self._image(key, entry["digest"], data)
            if image is not None:
                images.append(image)
        referenced = {entry["digest"] for entry in data["references"].values()}
        for digest in sorted(set(data["images"]) - referenced):
            image = self._image("<none>", digest, data)
            if image is not None:
                images.append(image)
        return images

    def rootfs_path(self, digest: str) -> Path:
        """Where the image with manifest ``digest`` is (or would be) unpacked."""
        algorithm, _, hexdigest = digest.partition(":")
        return self.root / algorithm / hexdigest / "rootfs"

    def _image(self, reference: str, digest: str, data: dict[str, Any]) -> Image | None:
        record = data["images"].get(digest)
        rootfs = self.rootfs_path(digest)
        if record is None or not rootfs.is_dir():
            return None
        return Image(
            reference=reference,
            digest=digest,
            rootfs=rootfs,
            env=tuple(record["env"]),
            working_dir=record["workingDir"],
            user=record["user"],
            entrypoint=tuple(record["entrypoint"]),
            cmd=tuple(record["cmd"]),
            size_bytes=int(record["sizeBytes"]),
            created=record.get("created", ""),
        )

    def _cached(self, ref: Reference) -> Image | None:
        data = self._index.read()
        entry = data["references"].get(ref.key)
        if entry is None or entry.get("stamp") != _source_stamp(ref):
            return None
        return self._image(ref.text, entry["digest"], data)

    # -- pulling -------------------------------------------------------------------------------

    def _lock_path(self, name: str) -> Path:
        digest = hashlib.sha256(name.encode()).hexdigest()[:32]
        return self.root / "locks" / f"{digest}.lock"

    @contextmanager
    def _staging(self) -> Iterator[Path]:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.root.stat().st_mode & 0o077:  # made before images were private
            self.root.chmod(0o700)
        for sub in ("tmp", "locks", "sha256"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=self.root / "tmp"))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def _pull(self, ref: Reference, *, refresh: bool) -> Image:
        stamp = _source_stamp(ref)  # a missing file fails here, before any tool runs
        with self._staging() as staging, file_lock(self._lock_path(ref.key)):
            image = None if refresh else self._cached(ref)
            if image is not None:  # another process pulled it while we waited for the lock
                return image
            config = self._fetch(ref, staging / "layout")
            with file_lock(self._lock_path(config.digest)):  # prune skips a digest held here
                self._unpack_once(ref, staging, config.digest)
                return self._register(ref, stamp, config, self.rootfs_path(config.digest).parent)

    def _fetch(self, ref: Reference, layout: Path) -> ImageConfig:
        from sandpool.images.fetch import copy_to_layout
        from sandpool.images.layout import read_image

        if ref.transport is Transport.BUILTIN:
            self._build_builtin(ref, layout)
        else:
            copy_to_layout(ref, ref.key, layout, _TAG, timeout=self.pull_timeout, tmp=layout.parent)
        return read_image(layout, _TAG, ref.text)

    def _build_builtin(self, ref: Reference, layout: Path) -> None:
        from sandpool.images.builtin import builtin, pack_layout

        image = builtin(ref.target)
        rootfs = layout.parent / "build-rootfs"
        image.build_rootfs(rootfs)
        pack_layout(image, rootfs, layout, _TAG)
        shutil.rmtree(rootfs, ignore_errors=True)

    def _unpack_once(self, ref: Reference, staging: Path, digest: str) -> None:
        """Unpack into staging and rename into place, unless that digest is there already."""
        from sandpool.images.fetch import unpack_rootfs

        final = self.rootfs_path(digest).parent
        if final.is_dir():
            return
        unpacked = staging / "image"
        unpacked.mkdir()
        unpack_rootfs(ref, staging / "layout", _TAG, unpacked / "rootfs", timeout=self.pull_timeout)
        (unpacked / "size").write_text(str(_tree_size(unpacked / "rootfs")))
        final.parent.mkdir(parents=True, exist_ok=True)
        os.rename(unpacked, final)

    def _register(
        self, ref: Reference, stamp: str | None, config: ImageConfig, final: Path
    ) -> Image:
        record = {
            "env": list(config.env),
            "workingDir": config.working_dir,
            "user": config.user,
            "entrypoint": list(config.entrypoint),
            "cmd": list(config.cmd),
            "created": config.created,
            "architecture": config.architecture,
            "sizeBytes": int((final / "size").read_text()),
        }
        with self._index.editing() as data:
            data["images"][config.digest] = record
            data["references"][ref.key] = {
                "digest": config.digest,
                "stamp": stamp,
                "pulledAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            image = self._image(ref.text, config.digest, data)
        if image is None:
            raise InvalidImage(f"image {ref.text!r}: unpacked rootfs vanished at {final}")
        return image

    # -- removing ------------------------------------------------------------------------------

    def remove(self, reference_or_digest: str) -> None:
        """Forget a reference (or every reference to a digest); delete images left unreferenced."""
        text = reference_or_digest
        with self._index.editing() as data:
            references = data["references"]
            key = _key_or_none(text)
            if key in references:
                digests = {references.pop(key)["digest"]}
            else:
                digests = self._digests_matching(text, data)
                for k in [k for k, e in references.items() if e["digest"] in digests]:
                    del references[k]
            still = {entry["digest"] for entry in references.values()}
            for digest in digests - still:
                if not self._delete(digest, data):
                    raise ImageError(f"image {text!r} ({digest}) is in use; nothing was removed")

    def _digests_matching(self, text: str, data: dict[str, Any]) -> set[str]:
        bare = text.removeprefix("sha256:")
        found: set[str] = set()
        if len(bare) >= 12 and all(c in "0123456789abcdef" for c in bare):
            found = {d for d in data["images"] if d.removeprefix("sha256:").startswith(bare)}
        if len(found) > 1:
            raise InvalidImage(f"digest prefix {text!r} is ambiguous: {', '.join(sorted(found))}")
        if not found:
            raise ImageNotFound(f"image {text!r} is not in the cache at {self.root}")
        return found

    def _delete(self, digest: str, data: dict[str, Any]) -> bool:
        """Delete one unpacked image unless it is mounted or being pulled; True if gone."""
        final = self.rootfs_path(digest).parent
        if str(final) in _mounted_paths() or _lower_of_a_container(self.root.parent, final):
            return False
        with file_lock(self._lock_path(digest), blocking=False) as acquired:
            if not acquired:
                return False
            data["images"].pop(digest, None)
            if final.is_dir():
                (self.root / "tmp").mkdir(exist_ok=True)
                doomed = Path(tempfile.mkdtemp(prefix="rm-", dir=self.root / "tmp"))
                os.rename(final, doomed / "image")  # gone at once; the slow rmtree comes after
                shutil.rmtree(doomed, ignore_errors=True)
        return True

    def prune(self, *, everything: bool = False) -> builtins.list[Image]:
        """Delete unreferenced images (``everything``: all not in use) and dead pulls' staging."""
        removed: builtins.list[Image] = []
        with self._index.editing() as data:
            references = data["references"]
            still = set() if everything else {e["digest"] for e in references.values()}
            for digest in sorted(set(data["images"]) - still):
                names = [k for k, e in references.items() if e["digest"] == digest]
                image = self._image(names[0] if names else "<none>", digest, data)
                if not self._delete(digest, data):
                    continue
                for key in names:
                    del references[key]
                if image is not None:
                    removed.append(image)
        self._sweep_staging()
        return removed

    def _sweep_staging(self) -> None:
        tmp = self.root / "tmp"
        for entry in tmp.iterdir() if tmp.is_dir() else ():
            owner = entry.name.split("-", 1)[0]
            if owner == "rm" or (owner.isdigit() and not Path(f"/proc/{owner}").exists()):
                shutil.rmtree(entry, ignore_errors=True)


def _key_or_none(text: str) -> str | None:
    try:
        return parse_reference(text).key
    except ImageError:
        return None
