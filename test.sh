#!/usr/bin/env bash
# The whole test suite: lint, types, unit and integration tests (integration tests need root).
#
# With no arguments (as CI runs it) the tests run in three processes at once, since most of
# them wait (on containers, servers, time limits) rather than compute: the VM stage (tests/vm,
# a qemu guest, minutes of emulation) in one, every other test in SANDPOOL_TEST_WORKERS
# pytest-xdist workers (default 1; 2 halve the time but flake on timing, see the README)
# that take whole files, so a module's server or cluster is still started once. Each process is a test session of its own (state dir, gVisor root,
# cgroup parent, test network), as concurrent sessions on one machine already are.
# The 15 slowest tests are listed at the end (what to look at when the suite grows).
# With arguments: one pytest with them, as before (`./test.sh tests/unit -q`).
set -euo pipefail
cd "$(dirname "$0")"
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
.venv/bin/mypy
if [ $# -gt 0 ]; then
  exec .venv/bin/pytest "$@"
fi

vm_log=$(mktemp /tmp/sandpool-vm-stage-XXXXXX.log)
# A background job ignores SIGINT: restored, so that Ctrl-C (or the trap) stops the stage's
# pytest the way it stops a foreground one, which then stops its VM.
env --default-signal=INT .venv/bin/pytest -q -rfEs tests/vm >"$vm_log" 2>&1 &
vm_pid=$!
trap 'kill -INT "$vm_pid" 2>/dev/null || true; wait "$vm_pid" || true; rm -f "$vm_log"; exit 130' INT TERM
host=0
.venv/bin/pytest -n "${SANDPOOL_TEST_WORKERS:-1}" --dist loadfile --durations=15 --ignore=tests/vm || host=$?
vm=0
wait "$vm_pid" || vm=$?
echo "---- VM stage (tests/vm), a pytest of its own beside the others: exit $vm ----"
cat "$vm_log"
rm -f "$vm_log"
if [ "$host" -ne 0 ]; then exit "$host"; fi
exit "$vm"
