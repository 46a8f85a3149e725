"""Command line: a thin click layer; one module per command group, loaded only when invoked."""
