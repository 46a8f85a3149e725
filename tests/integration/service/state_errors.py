"""The sandbox API's wrong-state answers (409), asked of a server or a gateway: every one
names the sandbox's state or the cause, carries a hint with the fix, and none blames a
container start."""

from __future__ import annotations

from typing import Any

import httpx

MISLEADING = ("could not start", "the runtime failed", "internal")


def _conflict(answer: httpx.Response, *words: str) -> dict[str, Any]:
    assert answer.status_code == 409, answer.text
    body: dict[str, Any] = answer.json()
    message, hint = body["message"], body.get("hint") or ""
    assert body["code"] == "conflict", body
    assert not any(w in message.lower() for w in MISLEADING), body
    assert all(w in message for w in words), body
    assert hint, f"no hint: {body}"
    return body


def assert_state_errors(url: str, key: str, pool: str) -> None:
    """Create a sandbox without a network in ``pool`` and ask it what it cannot do, running,
    paused and ended."""
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=120) as c:
        made = c.post("/v1/sandboxes", json={"pool": pool})
        assert made.status_code == 201, made.text
        path = f"/v1/sandboxes/{made.json()['id']}"
        network = _conflict(c.put(f"{path}/network", json={"network": "open"}),
                            "without a network")  # fmt: skip
        assert "create" in network["hint"] and '"network"' in network["hint"], network
        _conflict(c.put(f"{path}/network", json={"allow": ["127.0.0.1/32"]}), "without a network")
        _conflict(c.post(f"{path}/resume"), "running")
        assert c.post(f"{path}/pause").status_code == 200
        _conflict(c.post(f"{path}/pause"), "paused")
        _conflict(c.post(f"{path}/execs", json={"command": ["true"]}), "paused")
        assert c.delete(path).status_code == 200
        for answer in (c.post(f"{path}/pause"), c.post(f"{path}/resume"),
                       c.put(f"{path}/ttl", json={"ttl": 60}),
                       c.put(f"{path}/network", json={"network": "open"}),
                       c.post(f"{path}/execs", json={"command": ["true"]}),
                       c.get(f"{path}/files", params={"path": "/"})):  # fmt: skip
            _conflict(answer, "terminated" if "ended" not in answer.text else "ended")
