"""The SDK without a server: URL and key precedence, answers decoded into the typed errors,
which retries are safe, and the sync and async twins having the same methods."""

from __future__ import annotations

import base64
import inspect

import httpx
import pytest

import sandpool.client as client_module
from sandpool.client import (
    AsyncClient,
    AsyncExecStream,
    AsyncSandbox,
    AsyncSandboxFiles,
    Client,
    ExecStream,
    OutputChunk,
    Sandbox,
    SandboxFiles,
)
from sandpool.client import operations as ops
from sandpool.client.sandbox_models import StreamCursor
from sandpool.client.transport import Call, Endpoint, RetryPolicy, decode
from sandpool.errors import (
    SERVICE_ERRORS,
    InvalidRequest,
    NotFound,
    QuotaExceeded,
    ServiceError,
    Unauthenticated,
)


def test_arguments_come_before_the_environment() -> None:
    env = {"SANDPOOL_URL": "http://env:1/", "SANDPOOL_API_KEY": "envkey"}
    assert Endpoint.resolve(None, None, env) == Endpoint("http://env:1", "envkey")
    assert Endpoint.resolve("http://arg:2", "argkey", env) == Endpoint("http://arg:2", "argkey")
    with pytest.raises(InvalidRequest, match="SANDPOOL_URL"):
        Endpoint.resolve(None, None, {})
    assert "Authorization" not in Endpoint("http://x", None).headers()


@pytest.mark.parametrize("code", sorted(SERVICE_ERRORS))
def test_every_error_code_decodes_to_its_class(code: str) -> None:
    kind = SERVICE_ERRORS[code]
    response = httpx.Response(kind.status, json={"code": code, "message": "m", "hint": "h"},
                              headers={"Retry-After": "3"})  # fmt: skip
    with pytest.raises(kind) as raised:
        decode(ops.me(), response)
    assert (raised.value.message, raised.value.hint, raised.value.retry_after) == ("m", "h", 3.0)


def test_an_answer_without_the_shape_decodes_by_status() -> None:
    with pytest.raises(NotFound):
        decode(ops.me(), httpx.Response(404, text="<html>gone</html>"))
    with pytest.raises(ServiceError):
        decode(ops.me(), httpx.Response(418, text="teapot"))


def test_retries_only_where_safe() -> None:
    policy = RetryPolicy(attempts=3)
    post, get = ops.run((), pool="p", image=None, env=None, workdir=None, cpu=None,
                        memory=None, pids=None, disk=None, max_output=None, timeout=None,
                        stdin=None), ops.me()  # fmt: skip
    refused = httpx.ConnectError("refused")
    assert policy.should_retry(post, 0, error=refused)  # it never reached the server
    assert not policy.should_retry(post, 0, error=httpx.ReadError("reset"))
    assert not policy.should_retry(post, 0, status=503)
    assert policy.should_retry(get, 0, status=503)
    assert not policy.should_retry(get, 0, status=429)
    assert not policy.should_retry(get, 2, status=503)  # the last try


def test_a_quota_refusal_is_not_retried_behind_the_callers_back() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(
            429,
            headers={"Retry-After": "2"},
            json={"code": "quota_exceeded", "message": "m", "hint": None},
        )

    client = Client("http://x", "k", transport=httpx.MockTransport(handler))
    with client, pytest.raises(QuotaExceeded) as raised:
        client.run(["true"])
    assert raised.value.retry_after == 2.0 and len(calls) == 1
    assert calls[0].headers["authorization"] == "Bearer k"


def test_a_get_is_retried_after_a_503() -> None:
    answers = [httpx.Response(503, json={"code": "unavailable", "message": "m", "hint": None}),
               httpx.Response(200, json={"keyId": "k", "admin": True, "tenant": None,
                                         "quota": None, "usage": None})]  # fmt: skip
    transport = httpx.MockTransport(lambda request: answers.pop(0))
    with Client("http://x", "k", retry=RetryPolicy(backoff=0.0), transport=transport) as client:
        assert client.me().admin


def test_unauthenticated_is_not_retried() -> None:
    transport = httpx.MockTransport(lambda r: httpx.Response(
        401, json={"code": "unauthenticated", "message": "m", "hint": None}))  # fmt: skip
    with Client("http://x", "k", transport=transport) as client, pytest.raises(Unauthenticated):
        client.list_pools()


def _methods(cls: type) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(getattr(cls, name)) for name in dir(cls)
            if not name.startswith("_") and name not in ("close", "aclose")
            and callable(getattr(cls, name))}  # fmt: skip


def test_the_twins_have_the_same_methods_and_signatures() -> None:
    sync, aio = _methods(Client), _methods(AsyncClient)
    assert sync.keys() == aio.keys()
    for name, signature in sync.items():
        assert str(signature).replace("Client", "X") == str(aio[name]).replace(
            "AsyncClient", "X"), name  # fmt: skip
        assert inspect.iscoroutinefunction(getattr(AsyncClient, name)) or name == "retry"


def test_all_is_what_the_module_exports() -> None:
    exported = {n for n, v in vars(client_module).items() if not n.startswith("_")
                and not inspect.ismodule(v) and n != "annotations"}  # fmt: skip
    assert set(client_module.__all__) == exported
    assert {"Sandbox", "AsyncSandbox"} <= set(client_module.__all__)


def _parameters(signature: inspect.Signature) -> str:
    """Names, kinds and defaults (the async twin also takes async iterables, etc.)."""
    return str([(p.name, p.kind, p.default) for p in signature.parameters.values()])


@pytest.mark.parametrize(("sync", "aio"), [(Sandbox, AsyncSandbox), (ExecStream, AsyncExecStream),
                                           (SandboxFiles, AsyncSandboxFiles)])  # fmt: skip
def test_the_sandbox_twins_have_the_same_methods(sync: type, aio: type) -> None:
    mine, theirs = _methods(sync), _methods(aio)
    assert mine.keys() == theirs.keys()
    for name, signature in mine.items():
        assert _parameters(signature) == _parameters(theirs[name]), name
    properties = {n for n in dir(sync) if isinstance(getattr(sync, n, None), property)}
    assert properties == {n for n in dir(aio) if isinstance(getattr(aio, n, None), property)}


def test_a_stream_cursor_resumes_and_skips_what_it_has() -> None:
    cursor = StreamCursor()
    line = '{"type":"stdout","offset":0,"data":"%s"}'
    assert cursor.feed(line % base64.b64encode(b"abc").decode()) == OutputChunk("stdout", 0, b"abc")
    assert cursor.params() == {"stdout_offset": "3", "stderr_offset": "0"}
    again = line.replace('"offset":0', '"offset":1') % base64.b64encode(b"bcde").decode()
    assert cursor.feed(again) == OutputChunk("stdout", 3, b"de")  # resent bytes skipped
    assert cursor.feed(line % base64.b64encode(b"abcde").decode()) is None
    assert cursor.feed('{"type":"keepalive"}') is None and cursor.exit is None
    assert cursor.feed('{"type":"exit","exitCode":0}') is None and cursor.exit == {
        "type": "exit", "exitCode": 0}  # fmt: skip


def test_a_call_knows_whether_it_is_idempotent() -> None:
    assert Call("DELETE", "/", lambda d: d).idempotent
    assert not Call("POST", "/", lambda d: d).idempotent
