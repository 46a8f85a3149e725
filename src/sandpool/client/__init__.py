"""The Python SDK of the sandpool service: ``Client`` and its asyncio twin ``AsyncClient``
(same method names) over one transport layer (``transport``), one set of calls
(``operations``) and one set of models (``models``).

    from sandpool.client import Client
    with Client() as client:               # $SANDPOOL_URL, $SANDPOOL_API_KEY
        r = client.run(["python3", "-c", "print(42)"], pool="default")
        print(r.exit_code, r.stdout)

Errors are the ``ServiceError`` classes of ``sandpool.errors`` (one per API error code:
QuotaExceeded carries ``retry_after``); no answer at all is ServiceUnreachable.
``Sandbox`` and its asyncio twin ``AsyncSandbox`` drive long-lived sandboxes (``sandbox``).
"""

from __future__ import annotations

from sandpool.client.aio import AsyncClient
from sandpool.client.asandbox import AsyncExecStream, AsyncSandbox, AsyncSandboxFiles
from sandpool.client.models import ApiKey, CreatedKey, Me, Pool, RunResult, Tenant
from sandpool.client.sandbox import ExecStream, Sandbox, SandboxFiles
from sandpool.client.sandbox_models import (
    ExecResult,
    FileInfo,
    OutputChunk,
    SandboxInfo,
    SandboxUsage,
)
from sandpool.client.sync import Client
from sandpool.client.transport import API_KEY_ENV, URL_ENV, RetryPolicy
from sandpool.errors import (
    Conflict,
    HeadersTooLarge,
    InternalServerError,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    QuotaExceeded,
    ServiceError,
    ServiceUnavailable,
    ServiceUnreachable,
    Unauthenticated,
)

__all__ = [
    "API_KEY_ENV",
    "URL_ENV",
    "ApiKey",
    "AsyncClient",
    "AsyncExecStream",
    "AsyncSandbox",
    "AsyncSandboxFiles",
    "Client",
    "Conflict",
    "CreatedKey",
    "ExecResult",
    "ExecStream",
    "FileInfo",
    "HeadersTooLarge",
    "InternalServerError",
    "InvalidRequest",
    "Me",
    "NotFound",
    "OutputChunk",
    "PayloadTooLarge",
    "PermissionDenied",
    "Pool",
    "QuotaExceeded",
    "RetryPolicy",
    "RunResult",
    "Sandbox",
    "SandboxFiles",
    "SandboxInfo",
    "SandboxUsage",
    "ServiceError",
    "ServiceUnavailable",
    "ServiceUnreachable",
    "Tenant",
    "Unauthenticated",
]
