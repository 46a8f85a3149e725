"""The HTTP service: thin routes (parse, call the core, render), API keys, tenant quotas,
metrics and logs, on FastAPI/uvicorn.

``sandpool server`` builds a ``ServiceContext`` (``server.build_context``) and serves
``app.create_app(context)``. The long-lived sandboxes of issue 15 slot in as one more
router module (``routes/sandboxes.py``) over ``store.sandboxes`` and the same quota ledger.
"""
