"""The HTTP API in-process (fake executor): status codes, the error shape, the fields named,
auth, tenants and keys, pools, runs, the OpenAPI document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sandpool.errors import RuntimeNotAvailable
from sandpool.service.openapi import render
from tests.unit.service.conftest import ADMIN, Api
from tests.unit.service.fakes import FakeExecutor

REPO = Path(__file__).resolve().parents[3]


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """The answer has ``status`` and the one error shape with ``code``; no traceback."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "message", "hint"}, body
    assert body["code"] == code, body
    assert "Traceback" not in response.text
    return dict(body)


def test_the_checked_in_openapi_document_is_the_served_one(api: Api) -> None:
    checked_in = (REPO / "docs" / "openapi.json").read_text()
    assert checked_in == render(), (
        "docs/openapi.json is stale: python -m sandpool.service.openapi > docs/openapi.json"
    )
    assert api.http.get("/openapi.json").json() == json.loads(checked_in)


def test_health_ready_and_metrics_need_no_key(api: Api) -> None:
    assert api.http.get("/healthz").json() == {"status": "ok"}
    assert api.http.get("/readyz").json() == {"status": "ready"}
    metrics = api.http.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'sandpool_http_requests_total{method="GET",route="/readyz",status="200"}' in (
        metrics.text
    )


@pytest.mark.parametrize("header", [None, "Bearer", "Basic abc", "Bearer nope",
                                    "Bearer sp_0123456789abcdef_" + "A" * 43])  # fmt: skip
def test_missing_or_unknown_keys_are_401(api: Api, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    assert_error(api.http.get("/v1/pools", headers=headers), 401, "unauthenticated")


def test_revoked_and_expired_keys_are_401(api: Api) -> None:
    acme = api.tenant("acme")
    assert api.http.get("/v1/me", headers=acme).status_code == 200
    key_id = api.http.get("/v1/me", headers=acme).json()["keyId"]
    assert api.http.delete(f"/v1/keys/{key_id}", headers=ADMIN).json()["revokedAt"]
    body = assert_error(api.http.get("/v1/me", headers=acme), 401, "unauthenticated")
    assert "revoked or expired" in body["message"]
    short = api.http.post("/v1/keys", json={"tenant": "acme", "expiresIn": 0.001},
                          headers=ADMIN).json()["key"]  # fmt: skip
    expired = {"Authorization": f"Bearer {short}"}
    assert_error(api.http.get("/v1/me", headers=expired), 401, "unauthenticated")


def test_tenants_and_keys_are_admin_only(api: Api) -> None:
    acme = api.tenant("acme")
    for method, path, body in [("GET", "/v1/tenants", None), ("GET", "/v1/tenants/acme", None),
                               ("POST", "/v1/tenants", {"name": "x"}),
                               ("DELETE", "/v1/tenants/acme", None), ("GET", "/v1/keys", None),
                               ("POST", "/v1/keys", {"tenant": "acme"}),
                               ("DELETE", "/v1/keys/whatever", None)]:  # fmt: skip
        answer = api.http.request(method, path, json=body, headers=acme)
        assert_error(answer, 403, "permission_denied")
    assert_error(api.http.post("/v1/runs", json={}, headers=ADMIN), 403, "permission_denied")


def test_tenant_lifecycle(api: Api) -> None:
    made = api.http.post("/v1/tenants", json={"name": "acme", "quota": {"concurrent": 3,
                                                                       "memory": "1Gi"}},
                         headers=ADMIN)  # fmt: skip
    assert made.status_code == 201
    assert made.json()["quota"]["concurrent"] == 3
    assert made.json()["quota"]["memory"] == 1 << 30
    assert made.json()["quota"]["cpu"] == 16.0  # gateway.tenantQuota's default
    again = api.http.post("/v1/tenants", json={"name": "acme"}, headers=ADMIN)
    assert_error(again, 409, "conflict")
    assert [t["name"] for t in api.http.get("/v1/tenants", headers=ADMIN).json()] == ["acme"]
    key = api.http.post("/v1/keys", json={"tenant": "acme"}, headers=ADMIN).json()
    assert api.http.delete("/v1/tenants/acme", headers=ADMIN).status_code == 200
    assert_error(api.http.get("/v1/tenants/acme", headers=ADMIN), 404, "not_found")
    gone = {"Authorization": f"Bearer {key['key']}"}
    assert_error(api.http.get("/v1/me", headers=gone), 401, "unauthenticated")


def test_keys_are_shown_once_and_listed_without_secrets(api: Api) -> None:
    api.tenant("acme")
    made = api.http.post("/v1/keys", json={"tenant": "acme", "name": "ci"}, headers=ADMIN)
    secret = made.json()["key"]
    listed = api.http.get("/v1/keys", params={"tenant": "acme"}, headers=ADMIN).text
    assert secret not in listed and secret.split("_", 2)[2] not in listed  # its random part
    assert made.json()["id"] in listed
    assert_error(api.http.post("/v1/keys", json={"tenant": "nobody"}, headers=ADMIN),
                 404, "not_found")  # fmt: skip
    assert_error(api.http.delete("/v1/keys/nope", headers=ADMIN), 404, "not_found")


@pytest.mark.parametrize(("body", "field"), [
    ({"pool": 1}, "pool"),
    ({"command": "ls"}, "command"),
    ({"command": ["ls", 3]}, "command.1"),
    ({"limits": {"cpu": "2"}}, "limits.cpu"),
    ({"limits": {"cpu": 1e9}}, "limits.cpu"),
    ({"limits": {"memory": "lots"}}, "limits.memory"),
    ({"timeout": -1}, "timeout"),
    ({"env": {"A=B": "c"}}, "env.A=B.[key]"),
    ({"bogus": 1}, "bogus"),
    ({"pool": "nope"}, "pool"),
])  # fmt: skip
def test_bad_run_fields_are_400_naming_the_field(api: Api, body: dict[str, Any],
                                                field: str) -> None:  # fmt: skip
    acme = api.tenant("acme")
    error = assert_error(api.http.post("/v1/runs", json=body, headers=acme), 400,
                         "invalid_request")  # fmt: skip
    assert error["message"].startswith(field.split(".[")[0]), error


@pytest.mark.parametrize("raw", [b'{"pool":', b"[1]", b"\xff\xfe", b""])
def test_malformed_bodies_are_400(api: Api, raw: bytes) -> None:
    acme = api.tenant("acme")
    headers = {**acme, "Content-Type": "application/json"}
    assert_error(api.http.post("/v1/runs", content=raw, headers=headers), 400, "invalid_request")


def test_huge_headers_and_bodies(api: Api) -> None:
    acme = api.tenant("acme")
    big = api.http.get("/v1/pools", headers={**acme, "X-Big": "a" * 40000})
    assert_error(big, 431, "headers_too_large")
    body = {"command": ["echo", "x" * (2 << 20)]}
    assert_error(api.http.post("/v1/runs", json=body, headers=acme), 413, "payload_too_large")


def test_unknown_routes_and_methods_answer_the_error_shape(api: Api) -> None:
    assert_error(api.http.get("/v1/nope"), 404, "not_found")
    assert api.http.put("/v1/pools").status_code == 405


def test_pools(api: Api) -> None:
    acme = api.tenant("acme")
    pools = api.http.get("/v1/pools", headers=acme).json()
    assert [p["name"] for p in pools] == ["default", "performance"]
    default = api.http.get("/v1/pools/default", headers=acme).json()
    assert default["containerRuntime"] == "gvisor"
    assert default["limits"]["memory"] == "512Mi"
    assert_error(api.http.get("/v1/pools/nope", headers=acme), 404, "not_found")


def test_a_run_answers_like_sandpool_run(api: Api) -> None:
    acme = api.tenant("acme")
    body = {"pool": "performance", "command": ["cat"], "stdin": "hi", "env": {"A": "1"},
            "limits": {"cpu": 0.5, "memory": "64Mi"}, "timeout": 5}  # fmt: skip
    answer = api.http.post("/v1/runs", json=body, headers=acme)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert (result["exitCode"], result["stdout"], result["stderr"]) == (0, "out:hi", "\ufffd err")
    pool, request = api.executor.requests[0]
    assert (pool, request.command, request.env) == ("performance", ("cat",), ("A=1",))
    assert (request.cpu, request.memory, request.timeout) == (0.5, "64Mi", 5.0)
    b64 = api.http.post("/v1/runs", json={"outputEncoding": "base64"}, headers=acme).json()
    assert b64["stderr"] == "/yBlcnI="  # b"\xff err"
    metrics = api.http.get("/metrics").text
    assert 'sandpool_runs_total{exit_class="ok",pool="performance"} 1.0' in metrics


def test_a_missing_runtime_is_503_and_a_bug_is_a_500_without_traceback(
    make_api: Any,
) -> None:
    missing = make_api(FakeExecutor(raises=RuntimeNotAvailable("runsc: not found")))
    acme = missing.tenant("acme")
    error = assert_error(missing.http.post("/v1/runs", json={}, headers=acme), 503,
                         "unavailable")  # fmt: skip
    assert "runsc" in error["message"]
    assert missing.context.ledger.usage(missing.context.store.tenants.by_name("acme").id).count == 0


def test_an_unexpected_exception_is_a_500_in_the_error_shape(make_api: Any) -> None:
    broken = make_api(FakeExecutor(raises=ZeroDivisionError("secret detail")))
    acme = broken.tenant("acme")
    answer = broken.http.post("/v1/runs", json={}, headers=acme)
    error = assert_error(answer, 500, "internal")
    assert "secret detail" not in answer.text
    assert answer.headers["x-request-id"] in error["hint"]
