#!/usr/bin/env bash
# The whole test suite: lint, types, unit and integration tests (integration tests need root).
set -euo pipefail
cd "$(dirname "$0")"
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
.venv/bin/mypy
.venv/bin/pytest "$@"
