"""A worker's error answer becomes the same API error at the gateway (status, code, hint)."""

from __future__ import annotations

import httpx

from sandpool.dispatch.remote_sandboxes import worker_error
from sandpool.errors import Conflict, NotFound, ServiceUnavailable


def _answer(status: int, body: object) -> httpx.Response:
    return httpx.Response(status, json=body)


def test_known_statuses_keep_their_class_code_and_hint() -> None:
    error = worker_error(_answer(409, {"code": "conflict", "message": "paused", "hint": "resume"}))
    assert isinstance(error, Conflict)
    assert (error.status, error.code, error.message, error.hint) == (409, "conflict", "paused",
                                                                     "resume")  # fmt: skip
    assert isinstance(worker_error(_answer(404, {"message": "gone"})), NotFound)


def test_other_statuses_and_bodies_that_are_not_json() -> None:
    error = worker_error(httpx.Response(502, text="bad gateway"))
    assert isinstance(error, ServiceUnavailable)
    assert (error.status, error.message) == (502, "bad gateway")
    teapot = worker_error(_answer(418, {"code": "teapot", "message": "no"}))
    assert (teapot.status, teapot.code) == (418, "teapot")
