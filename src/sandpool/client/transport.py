"""The one layer under both clients: where to connect, what each call sends, how an answer
becomes a result or a typed error, and when a retry is safe. No I/O here: ``Client`` and
``AsyncClient`` each send a ``Call`` with their own httpx client.

Retries: a connection that could not be made (refused, DNS, connect timeout) is retried for
every call, since the server never saw it; a 502/503/504 or a broken read only for calls that
are idempotent (GET, DELETE). A 429 is never retried behind the caller's back: it gets
QuotaExceeded with ``retry_after``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx

from sandpool.errors import SERVICE_ERRORS, InvalidRequest, ServiceError, ServiceUnreachable

__all__ = [
    "API_KEY_ENV",
    "URL_ENV",
    "Call",
    "Endpoint",
    "RetryPolicy",
    "decode",
    "error_of",
    "unreachable",
]

URL_ENV, API_KEY_ENV = "SANDPOOL_URL", "SANDPOOL_API_KEY"
T = TypeVar("T")
_IDEMPOTENT = {"GET", "HEAD", "DELETE", "PUT"}
_TRANSIENT_STATUS = {502, 503, 504}


@dataclass(frozen=True)
class Endpoint:
    """The server's URL and the key to send (from the arguments, else the environment)."""

    url: str
    api_key: str | None

    @classmethod
    def resolve(cls, url: str | None = None, api_key: str | None = None,
                environ: Mapping[str, str] | None = None) -> Endpoint:  # fmt: skip
        """Arguments first, then ``$SANDPOOL_URL`` / ``$SANDPOOL_API_KEY``."""
        environ = os.environ if environ is None else environ
        url = url or environ.get(URL_ENV)
        if not url:
            raise InvalidRequest(
                "no server URL",
                field="url",
                hint=f"pass url= or set ${URL_ENV}, e.g. http://127.0.0.1:8080",
            )
        return cls(url.rstrip("/"), api_key or environ.get(API_KEY_ENV) or None)

    def headers(self) -> dict[str, str]:
        """The headers every call carries."""
        headers = {"Accept": "application/json", "User-Agent": "sandpool-sdk"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API call: what to send and how to read a successful answer."""

    method: str
    path: str
    read: Callable[[Any], T]
    json: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    content: bytes | None = None  # a raw body (an exec's stdin) instead of ``json``
    timeout: float | httpx.Timeout | None = 30.0  # seconds; None: as long as it takes (a run)

    @property
    def idempotent(self) -> bool:
        """Whether sending it twice does what sending it once does."""
        return self.method in _IDEMPOTENT


@dataclass(frozen=True)
class RetryPolicy:
    """How many times and how long to wait between tries (doubling)."""

    attempts: int = 3
    backoff: float = 0.2

    def delay(self, attempt: int) -> float:
        """Seconds to wait before try ``attempt + 1``."""
        return float(self.backoff * 2**attempt)

    def should_retry(self, call: Call[Any], attempt: int, *, status: int | None = None,
                     error: Exception | None = None) -> bool:  # fmt: skip
        """Whether try ``attempt`` (0-based) may be followed by another."""
        if attempt + 1 >= self.attempts:
            return False
        if isinstance(error, httpx.ConnectError | httpx.ConnectTimeout):
            return True  # never reached the server
        if not call.idempotent:
            return False
        return error is not None or status in _TRANSIENT_STATUS


def decode(call: Call[T], response: httpx.Response) -> T:
    """The call's result, or the ServiceError the answer names (by its ``code``)."""
    if response.is_success:
        return call.read(response.json() if response.content else None)
    raise _error(response)


def error_of(response: httpx.Response) -> ServiceError:
    """The ServiceError an unsuccessful answer names (its body read already)."""
    return _error(response)


def _error(response: httpx.Response) -> ServiceError:
    try:
        body = response.json()
        code, message, hint = body["code"], body["message"], body.get("hint")
    except (ValueError, KeyError, TypeError):
        code, message, hint = "", response.text[:200] or response.reason_phrase, None
    kind = SERVICE_ERRORS.get(code) or _by_status(response.status_code)
    retry = response.headers.get("retry-after")
    error = kind(message, hint=hint, retry_after=float(retry) if _number(retry) else None)
    error.status = response.status_code
    return error


def _by_status(status: int) -> type[ServiceError]:
    for kind in SERVICE_ERRORS.values():
        if kind.status == status:
            return kind
    return ServiceError


def _number(text: str | None) -> bool:
    try:
        return text is not None and float(text) >= 0
    except ValueError:
        return False


def unreachable(endpoint: Endpoint, error: httpx.HTTPError) -> ServiceUnreachable:
    """The error for a call that got no answer."""
    return ServiceUnreachable(f"no answer from {endpoint.url} ({type(error).__name__})",
                              hint="is `sandpool server` running there?")  # fmt: skip
