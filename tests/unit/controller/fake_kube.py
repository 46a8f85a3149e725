"""An HTTP-level fake of the Kubernetes API on 127.0.0.1: stores objects, records requests.

No real cluster exists in the unit-test environment, so ``k8s apply`` is tested against this:
the real lightkube client, real HTTP, a kubeconfig file pointing here. It implements only the
routes sandpool uses (get / create / server-side apply / delete of one object) and the server
rule that shapes sandpool's update strategy: some spec fields are immutable (``IMMUTABLE``).
"""

from __future__ import annotations

import copy
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
RUNTIMECLASSES = "/apis/node.k8s.io/v1/runtimeclasses"
NAMESPACED = {
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments",
    "StatefulSet": "/apis/apps/v1/namespaces/{ns}/statefulsets",
    "Service": "/api/v1/namespaces/{ns}/services",
    "ConfigMap": "/api/v1/namespaces/{ns}/configmaps",
    "Secret": "/api/v1/namespaces/{ns}/secrets",
    "NetworkPolicy": "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies",
}
# spec fields the real API server refuses to change (apps/v1 validation)
IMMUTABLE = {"Deployment": ["selector"], "StatefulSet": ["selector", "volumeClaimTemplates"]}


@dataclass(frozen=True)
class Recorded:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, list[str]]
    content_type: str
    body: Any


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    """A ``meta/v1`` Status, the body of every API error."""
    failure = "Success" if code < 400 else "Failure"
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": failure,
        "code": code,
        "reason": reason,
        "message": message,
    }


class FakeKubeAPI:
    """In-memory objects keyed by their item path; thread-safe through one lock."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.requests: list[Recorded] = []
        self.forbidden: set[str] = set()  # item paths that answer 403
        self._lock = threading.Lock()
        self._version = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    @property
    def url(self) -> str:
        """Base URL of the fake API server."""
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> FakeKubeAPI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def write_kubeconfig(self, path: Path, namespace: str = "sandpool-test") -> str:
        """A kubeconfig whose current context points at this fake."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "fake-token"}}],
            "contexts": [
                {
                    "name": "fake",
                    "context": {"cluster": "fake", "user": "fake", "namespace": namespace},
                }
            ],
        }
        path.write_text(json.dumps(config))
        return str(path)

    def add_runtime_class(self, name: str) -> None:
        self.store(
            f"{RUNTIMECLASSES}/{name}",
            {
                "apiVersion": "node.k8s.io/v1",
                "kind": "RuntimeClass",
                "metadata": {"name": name},
                "handler": name,
            },
        )

    def store(self, path: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Save ``obj`` under ``path`` with a new resourceVersion."""
        self._version += 1
        saved = copy.deepcopy(obj)
        saved.setdefault("metadata", {})["resourceVersion"] = str(self._version)
        self.objects[path] = saved
        return saved

    def writes(self) -> list[Recorded]:
        """The requests that would change the cluster."""
        return [r for r in self.requests if r.method in WRITE_METHODS]

    def get(self, kind: str, name: str, namespace: str = "sandpool-test") -> dict[str, Any] | None:
        """The stored object ``kind``/``name``, or None."""
        return self.objects.get(f"{NAMESPACED[kind].format(ns=namespace)}/{name}")

    # ---- request handling -----------------------------------------------------------------

    def handle(self, method: str, path: str, body: Any) -> tuple[int, dict[str, Any]]:
        """The answer to one request, under the lock."""
        with self._lock:
            if path in self.forbidden:
                return 403, status(403, "Forbidden", f"{path} is forbidden")
            if method == "GET":
                found = self.objects.get(path)
                return (
                    (200, found) if found else (404, status(404, "NotFound", f"{path} not found"))
                )
            if method == "POST":
                item = f"{path}/{body['metadata']['name']}"
                if item in self.objects:
                    return 409, status(409, "AlreadyExists", f"{item} already exists")
                return 201, self.store(item, body)
            if method == "PATCH":
                return self._server_side_apply(path, body)
            if method == "DELETE" and path in self.objects:
                del self.objects[path]
                return 200, status(200, "", "deleted")
            return 404, status(404, "NotFound", f"{path} not found")

    def _server_side_apply(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        old = self.objects.get(path)
        if old is None:
            return 201, self.store(path, body)
        for field in IMMUTABLE.get(body.get("kind", ""), []):
            if old["spec"].get(field) != body["spec"].get(field):
                kind, name = body["kind"], body["metadata"]["name"]
                message = f'{kind}.apps "{name}" is invalid: spec.{field}: ...: field is immutable'
                return 422, status(422, "Invalid", message)
        unchanged = {**old, "metadata": {**old["metadata"], "resourceVersion": None}}
        candidate = {**body, "metadata": {**body["metadata"], "resourceVersion": None}}
        if unchanged == candidate:
            return 200, old
        return 200, self.store(path, body)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                content_type = self.headers.get("Content-Type", "")
                fake.requests.append(
                    Recorded(self.command, url.path, parse_qs(url.query), content_type, body)
                )
                code, answer = fake.handle(self.command, url.path, body)
                data = json.dumps(answer).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
