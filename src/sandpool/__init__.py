"""sandpool: run untrusted code in containers grouped into worker pools, under runc or gVisor."""

__all__: list[str] = []
