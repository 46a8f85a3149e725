"""``/v1/sandboxes/{id}/files``: upload and download (streamed both ways), list, stat,
remove, mkdir, rename.

Paths are the sandbox's own (relative ones from its workdir) and are resolved inside it by
its kernel (``sandbox.files``): ``..`` and symlinks never leave its root. An upload's body
goes to the sandbox as it comes (``RequestLimits`` leaves ``…/files/content`` bodies
unread), bounded by ``gateway.maxUploadSize`` (413) and the sandbox's disk (413); a failed
upload leaves no partial file.
"""

from __future__ import annotations

import contextlib
import posixpath
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import StreamingResponse

from sandpool.errors import SandpoolError
from sandpool.sandbox import FileEntry
from sandpool.service.context import context_of
from sandpool.service.routes.sandboxes import Access
from sandpool.service.sandbox_schemas import FileOut, MkdirIn, RenameIn, WrittenOut
from sandpool.service.schemas import ErrorOut
from sandpool.service.streams import (
    STREAM_THREADS,
    body_source,
    chunks_of,
    first_chunk,
    upload_too_large,
)
from sandpool.sizes import parse_size

__all__ = ["CONTENT_SUFFIX", "router", "upload_limit"]

router = APIRouter(prefix="/v1/sandboxes/{sandbox_id}/files", tags=["files"])
_ERRORS = {s: {"model": ErrorOut} for s in (400, 401, 403, 404, 409, 413)}
CONTENT_SUFFIX = "/files/content"  # the streamed paths (see ``is_upload``)
Path = Annotated[str, Query(min_length=1, max_length=4096)]


def upload_limit(request: Request) -> int:
    """``gateway.maxUploadSize`` in bytes (a dependency: a worker states its own)."""
    return parse_size(context_of(request).gateway.max_upload_size)


UploadLimit = Annotated[int, Depends(upload_limit)]


def file_out(entry: FileEntry) -> FileOut:
    """The API's view of one file."""
    return FileOut(name=entry.name, path=entry.path, type=entry.type, mode=oct(entry.mode),
                   size=entry.size, mtime=entry.mtime)  # fmt: skip


def is_upload(path: str) -> bool:
    """Whether a request path is a file's content (its body is streamed, not read first)."""
    return path.startswith("/v1/sandboxes/") and path.endswith(CONTENT_SUFFIX)


@router.get("", responses=_ERRORS)  # type: ignore[arg-type]
def list_files(sandbox_id: str, path: Path, owner: Access) -> list[FileOut]:
    """The entries of the directory ``path``, by name."""
    service, tenant = owner
    service.pool_of(tenant, sandbox_id)
    return [file_out(e) for e in service.manager.list_files(sandbox_id, path)]


@router.get("/stat", responses=_ERRORS)  # type: ignore[arg-type]
def stat_file(sandbox_id: str, path: Path, owner: Access) -> FileOut:
    """``path`` itself (a symlink is reported as one)."""
    service, tenant = owner
    service.pool_of(tenant, sandbox_id)
    return file_out(service.manager.stat_file(sandbox_id, path))


@router.delete("", status_code=204, responses=_ERRORS)  # type: ignore[arg-type]
def remove_file(sandbox_id: str, path: Path, owner: Access, recursive: bool = False) -> None:
    """Remove a file, symlink or empty directory (``recursive``: a whole tree)."""
    service, tenant = owner
    service.pool_of(tenant, sandbox_id)
    service.manager.remove_file(sandbox_id, path, recursive)


@router.post("/mkdir", status_code=204, responses=_ERRORS)  # type: ignore[arg-type]
def make_dir(sandbox_id: str, body: MkdirIn, owner: Access) -> None:
    """Make a directory."""
    service, tenant = owner
    service.pool_of(tenant, sandbox_id)
    service.manager.make_dir(sandbox_id, body.path, body.parents)


@router.post("/rename", status_code=204, responses=_ERRORS)  # type: ignore[arg-type]
def rename_file(sandbox_id: str, body: RenameIn, owner: Access) -> None:
    """Move ``source`` to ``destination`` (replacing a file there)."""
    service, tenant = owner
    service.pool_of(tenant, sandbox_id)
    service.manager.rename_file(sandbox_id, body.source, body.destination)


@router.get("/content", response_class=StreamingResponse,
            responses={200: {"content": {"application/octet-stream": {}}}, **_ERRORS})  # type: ignore[dict-item]  # fmt: skip
async def download(sandbox_id: str, path: Path, owner: Access) -> StreamingResponse:
    """The file's bytes, streamed."""
    service, tenant = owner
    await anyio.to_thread.run_sync(service.pool_of, tenant, sandbox_id, limiter=STREAM_THREADS)
    chunks = service.manager.read_file(sandbox_id, path)
    first = await first_chunk(chunks)
    return StreamingResponse(chunks_of(first, chunks), media_type="application/octet-stream")


@router.put("/content", status_code=201, responses=_ERRORS)  # type: ignore[arg-type]
async def upload(sandbox_id: str, path: Path, request: Request, owner: Access,
                 limit: UploadLimit,
                 mode: Annotated[str, Query(pattern=r"^[0-7]{1,4}$")] = "644",
                 ) -> WrittenOut:  # fmt: skip
    """Write the request body (raw bytes, streamed) to ``path``, replacing it (its missing
    parent directories are made first)."""
    service, tenant = owner
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise upload_too_large(limit)
    await anyio.to_thread.run_sync(service.pool_of, tenant, sandbox_id, limiter=STREAM_THREADS)
    source = body_source(request.stream(), limit)
    manager = service.manager
    parent = posixpath.dirname(path)  # created as needed, as other platforms' SDKs do
    await anyio.to_thread.run_sync(manager.make_dir, sandbox_id, parent, True,
                                   limiter=STREAM_THREADS)  # fmt: skip
    try:
        size = await anyio.to_thread.run_sync(manager.write_file, sandbox_id, path, source,
                                              int(mode, 8), limiter=STREAM_THREADS)  # fmt: skip
    except BaseException:
        with anyio.CancelScope(shield=True), contextlib.suppress(SandpoolError):
            await anyio.to_thread.run_sync(manager.remove_file, sandbox_id, path,
                                           limiter=STREAM_THREADS)  # fmt: skip
        raise
    return WrittenOut(path=path, size=size)
