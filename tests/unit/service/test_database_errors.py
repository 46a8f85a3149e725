"""A database that does not answer is the API's 503 naming the database; other failures are
left to the error boundary's 500."""

from __future__ import annotations

from sqlalchemy.exc import OperationalError

from sandpool.service.database_errors import database_unavailable


def test_an_operational_error_is_a_503_with_retry_after() -> None:
    error = database_unavailable(OperationalError("SELECT 1", {}, ConnectionRefusedError()))
    assert error is not None and error.status == 503 and error.code == "unavailable"
    assert "database" in error.message and error.retry_after
    assert "SELECT" not in error.message  # no statement or driver text on the wire


def test_a_wrapped_outage_is_found_through_its_cause() -> None:
    try:
        try:
            raise OperationalError("SELECT 1", {}, ConnectionRefusedError())
        except OperationalError as inner:
            raise RuntimeError("store failed") from inner
    except RuntimeError as outer:
        assert database_unavailable(outer) is not None


def test_other_failures_are_not_outages() -> None:
    assert database_unavailable(ValueError("bug")) is None
