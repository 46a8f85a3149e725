"""The database not answering (a PostgreSQL server stopped or restarting, a connection cut)
as the API's 503 naming the database, instead of an internal error: the request can be
retried, and the engine's ``pool_pre_ping`` reconnects once the server is back."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from sandpool.errors import ServiceUnavailable

__all__ = ["database_unavailable"]

RETRY_AFTER = 2.0


def _is_outage(exc: BaseException) -> bool:
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeout):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def database_unavailable(exc: BaseException) -> ServiceUnavailable | None:
    """The 503 for ``exc`` (or an exception it was raised from) if it says the database
    cannot be reached; None for any other failure."""
    seen: BaseException | None = exc
    for _ in range(8):  # the chain of causes, bounded
        if seen is None:
            return None
        if _is_outage(seen):
            return ServiceUnavailable(
                f"the database does not answer ({type(seen).__name__})",
                hint="retry shortly; if it lasts, check the server of gateway.database "
                "(--database) and the server's log",
                retry_after=RETRY_AFTER,
            )
        seen = seen.__cause__ or seen.__context__
    return None
