"""``AsyncClient``: the asyncio twin (httpx.AsyncClient) of ``Client``, same methods."""

from __future__ import annotations

import asyncio
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

__all__ = ["AsyncClient"]

T = TypeVar("T")


class AsyncClient:
    """A connection to one sandpool server, for one event loop; ``await aclose()`` it when done
    (or use ``async with``). ``url``/``api_key`` default to ``$SANDPOOL_URL`` and
    ``$SANDPOOL_API_KEY``."""

    def __init__(self, url: str | None = None, api_key: str | None = None, *,
                 retry: RetryPolicy | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:  # fmt: skip
        self.endpoint = Endpoint.resolve(url, api_key)
        self.retry = retry or RetryPolicy()
        self._http = httpx.AsyncClient(base_url=self.endpoint.url, headers=self.endpoint.headers(),
                                  transport=transport)  # fmt: skip

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    @property
    def http(self) -> httpx.AsyncClient:
        """The underlying httpx client (for the streamed calls of ``Sandbox``)."""
        return self._http

    async def send(self, call: Call[T]) -> T:
        """Send one call (retried where safe, see ``transport``) and read its answer."""
        return await self._send(call)

    async def _send(self, call: Call[T]) -> T:
        return decode(call, await self._answer(call, stream=False))

    async def open_stream(self, call: Call[Any]) -> httpx.Response:
        """Send ``call`` (retried as ``send`` is) and return its successful answer unread, to
        be read as it comes and closed by the caller; the ServiceError of any other answer."""
        response = await self._answer(call, stream=True)
        if not response.is_success:
            await response.aread()
            await response.aclose()
            raise error_of(response)
        return response

    async def _answer(self, call: Call[T], *, stream: bool) -> httpx.Response:
        attempt = 0
        while True:
            request = self._http.build_request(call.method, call.path, json=call.json,
                                               content=call.content, params=call.params,
                                               timeout=call.timeout)  # fmt: skip
            try:
                response = await self._http.send(request, stream=stream)
            except httpx.HTTPError as exc:
                if not self.retry.should_retry(call, attempt, error=exc):
                    raise unreachable(self.endpoint, exc) from exc
            else:
                if not self.retry.should_retry(call, attempt, status=response.status_code):
                    return response
                await response.aclose()
            await asyncio.sleep(self.retry.delay(attempt))
            attempt += 1

    async def run(self, command: Sequence[str] = (), *, pool: str = "default",
            image: str | None = None, env: Mapping[str, str] | None = None,
            workdir: str | None = None, cpu: float | None = None, memory: str | None = None,
            pids: int | None = None, disk: str | None = None, max_output: str | None = None,
            timeout: float | None = None, stdin: str | bytes | None = None,
            ) -> RunResult:  # fmt: skip
        """Run ``command`` in a new container of ``pool`` and return how it ended."""
        return await self._send(
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

    async def list_pools(self) -> list[Pool]:
        """The server's pools."""
        return await self._send(ops.list_pools())

    async def get_pool(self, name: str) -> Pool:
        """One pool."""
        return await self._send(ops.get_pool(name))

    async def me(self) -> Me:
        """Who this key belongs to, its quota and usage."""
        return await self._send(ops.me())

    async def create_tenant(self, name: str, *, concurrent: int | None = None,
                      cpu: float | None = None, memory: str | None = None,
                      creates_per_second: float | None = None) -> Tenant:  # fmt: skip
        """A new tenant (admin key)."""
        return await self._send(
            ops.create_tenant(
                name,
                concurrent=concurrent,
                cpu=cpu,
                memory=memory,
                creates_per_second=creates_per_second,
            )
        )

    async def list_tenants(self) -> list[Tenant]:
        """Every tenant (admin key)."""
        return await self._send(ops.list_tenants())

    async def get_tenant(self, name: str) -> Tenant:
        """One tenant (admin key)."""
        return await self._send(ops.get_tenant(name))

    async def delete_tenant(self, name: str) -> Tenant:
        """Delete a tenant and its keys (admin key)."""
        return await self._send(ops.delete_tenant(name))

    async def create_key(self, tenant: str, *, name: str = "",
                   expires_in: float | None = None) -> CreatedKey:  # fmt: skip
        """A new key of ``tenant`` (admin key); ``.key`` is shown this once."""
        return await self._send(ops.create_key(tenant, name=name, expires_in=expires_in))

    async def list_keys(self, tenant: str | None = None) -> list[ApiKey]:
        """The keys of ``tenant``, or all keys (admin key)."""
        return await self._send(ops.list_keys(tenant))

    async def revoke_key(self, key_id: str) -> ApiKey:
        """Revoke a key (admin key)."""
        return await self._send(ops.revoke_key(key_id))
