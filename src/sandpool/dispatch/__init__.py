"""Scale-out: a gateway places sandbox requests on workers of the right pool through Redis
(``broker``), workers pull them over the gateway's internal endpoints (``agent``) and serve
exec and file streams that the gateway proxies to them (``worker_api``, ``proxy``)."""
