"""``Client``: the blocking twin (httpx.Client). ``AsyncClient`` has the same methods."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import httpx

from sandpool.client import operations as ops
from sandpool.client.models import ApiKey, CreatedKey, Me, Pool, RunResult, Tenant
from sandpool.client.transport import (
    Call,
    Endpoint,
    RetryPolicy,
    decode,
    error_of,
    unreachable,
)

__all__ = ["Client"]

T = TypeVar("T")


class Client:
    """A connection to one sandpool server; thread-safe (httpx.Client is), close it when done
    (or use it as a context manager). ``url``/``api_key`` default to ``$SANDPOOL_URL`` and
    ``$SANDPOOL_API_KEY``."""

    def __init__(self, url: str | None = None, api_key: str | None = None, *,
                 retry: RetryPolicy | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:  # fmt: skip
        self.endpoint = Endpoint.resolve(url, api_key)
        self.retry = retry or RetryPolicy()
        self._http = httpx.Client(base_url=self.endpoint.url, headers=self.endpoint.headers(),
                                  transport=transport)  # fmt: skip

    def __enter__(self) -> Client:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    @property
    def http(self) -> httpx.Client:
        """The underlying httpx client (for the streamed calls of ``Sandbox``)."""
        return self._http

    def send(self, call: Call[T]) -> T:
        """Send one call (retried where safe, see ``transport``) and read its answer."""
        return self._send(call)

    def _send(self, call: Call[T]) -> T:
        return decode(call, self._answer(call, stream=False))

    def open_stream(self, call: Call[Any]) -> httpx.Response:
        """Send ``call`` (retried as ``send`` is) and return its successful answer unread, to
        be read as it comes and closed by the caller; the ServiceError of any other answer."""
        response = self._answer(call, stream=True)
        if not response.is_success:
            response.read()
            response.close()
            raise error_of(response)
        return response

    def _answer(self, call: Call[T], *, stream: bool) -> httpx.Response:
        attempt = 0
        while True:
            request = self._http.build_request(call.method, call.path, json=call.json,
                                               content=call.content, params=call.params,
                                               timeout=call.timeout)  # fmt: skip
            try:
                response = self._http.send(request, stream=stream)
            except httpx.HTTPError as exc:
                if not self.retry.should_retry(call, attempt, error=exc):
                    raise unreachable(self.endpoint, exc) from exc
            else:
                if not self.retry.should_retry(call, attempt, status=response.status_code):
                    return response
                response.close()
            time.sleep(self.retry.delay(attempt))
            attempt += 1

    def run(self, command: Sequence[str] = (), *, pool: str = "default",
            image: str | None = None, env: Mapping[str, str] | None = None,
            workdir: str | None = None, cpu: float | None = None, memory: str | None = None,
            pids: int | None = None, disk: str | None = None, max_output: str | None = None,
            timeout: float | None = None, stdin: str | bytes | None = None,
            ) -> RunResult:  # fmt: skip
        """Run ``command`` in a new container of ``pool`` and return how it ended."""
        return self._send(
            ops.run(
                command,
                pool=pool,
                image=image,
                env=env,
                workdir=workdir,
                cpu=cpu,
                memory=memory,
                pids=pids,
                disk=disk,
                max_output=max_output,
                timeout=timeout,
                stdin=stdin,
            )
        )

    def list_pools(self) -> list[Pool]:
        """The server's pools."""
        return self._send(ops.list_pools())

    def get_pool(self, name: str) -> Pool:
        """One pool."""
        return self._send(ops.get_pool(name))

    def me(self) -> Me:
        """Who this key belongs to, its quota and usage."""
        return self._send(ops.me())

    def create_tenant(self, name: str, *, concurrent: int | None = None,
                      cpu: float | None = None, memory: str | None = None,
                      creates_per_second: float | None = None) -> Tenant:  # fmt: skip
        """A new tenant (admin key)."""
        return self._send(
            ops.create_tenant(
                name,
                concurrent=concurrent,
                cpu=cpu,
                memory=memory,
                creates_per_second=creates_per_second,
            )
        )

    def list_tenants(self) -> list[Tenant]:
        """Every tenant (admin key)."""
        return self._send(ops.list_tenants())

    def get_tenant(self, name: str) -> Tenant:
        """One tenant (admin key)."""
        return self._send(ops.get_tenant(name))

    def delete_tenant(self, name: str) -> Tenant:
        """Delete a tenant and its keys (admin key)."""
        return self._send(ops.delete_tenant(name))

    def create_key(self, tenant: str, *, name: str = "",
                   expires_in: float | None = None) -> CreatedKey:  # fmt: skip
        """A new key of ``tenant`` (admin key); ``.key`` is shown this once."""
        return self._send(ops.create_key(tenant, name=name, expires_in=expires_in))

    def list_keys(self, tenant: str | None = None) -> list[ApiKey]:
        """The keys of ``tenant``, or all keys (admin key)."""
        return self._send(ops.list_keys(tenant))

    def revoke_key(self, key_id: str) -> ApiKey:
        """Revoke a key (admin key)."""
        return self._send(ops.revoke_key(key_id))
