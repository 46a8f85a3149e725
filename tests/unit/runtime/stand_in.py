"""Stand-in ``runsc`` and ``runc`` binaries for unit tests (go-runc's way: no real runtime).

A stand-in is a small executable Python script written into a test's ``tmp_path``. It appends
its argv (without argv[0]) as one JSON line to ``<name>.calls``, answers ``--version``,
``help platforms``, ``flags``, ``list --format json``, ``state ID``, ``events``, ``exec`` and
``run`` (which writes the ``--pid-file`` it is given) with canned output, and exits with
``fail_status`` and ``fail_message`` on stderr for the verb named in ``fail_verb``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFAULT_FLAGS", "StandIn", "verb_index", "write_stand_in"]

# Flags as `runsc flags` prints them: "  -name [type]" then an indented description.
DEFAULT_FLAGS = ("root", "platform", "network", "debug", "nvproxy", "ignore-cgroups")
# Global or verb flags the stand-in (and verb_index) know take a separate value.
VALUED_FLAGS = ("--root", "--platform", "--log", "--log-format", "--bundle", "--pid-file",
                "--image-path")  # fmt: skip

_SCRIPT = """\
#!{python} -I
import json, sys

CONFIG = json.loads({config!r})
args = sys.argv[1:]
with open(CONFIG["log"], "a") as log:
    log.write(json.dumps(args) + "\\n")

i = 0
while i < len(args) and args[i].startswith("-"):
    i += 2 if args[i] in CONFIG["valued"] else 1
verb, rest = (args[i], args[i + 1:]) if i < len(args) else ("", [])

if not verb and "--version" in args:
    print("runsc version " + CONFIG["version"])
    print("spec: 1.0.2-dev")
    sys.exit(0)
if verb == CONFIG["fail_verb"]:
    sys.stderr.write(CONFIG["fail_message"] + "\\n")
    sys.exit(CONFIG["fail_status"])
if verb == "help" and rest == ["platforms"]:
    print("\\n".join(CONFIG["platforms"]))
elif verb == "flags":
    for flag in CONFIG["flags"]:
        print("  -" + flag + " string")
        print("    \\tdescription of " + flag + ".")
elif verb == "list":
    print(json.dumps([{{"id": c, "pid": 4000 + n, "status": "running", "bundle": "/b/" + c}}
                      for n, c in enumerate(CONFIG["containers"])]))
elif verb == "state":
    print(json.dumps({{"id": rest[-1], "pid": 4242, "status": "running", "bundle": "/b"}}))
elif verb == "events":
    print(json.dumps({{"type": "stats", "id": rest[-1], "data": {{"pids": {{"current": 2}}}}}}))
elif verb == "exec":
    print("exec:" + " ".join(rest))
elif verb == "run":
    pid_file = rest[rest.index("--pid-file") + 1]
    with open(pid_file, "w") as f:
        f.write("4242")
"""


@dataclass(frozen=True)
class StandIn:
    """One stand-in binary and the file its invocations are recorded in."""

    path: Path
    log: Path

    def calls(self) -> list[list[str]]:
        """Every argv (without the binary) it was invoked with, in order."""
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def verbs(self) -> list[str]:
        """The subcommand of every recorded call ("" for a bare ``--version``)."""
        return [argv[verb_index(argv)] if verb_index(argv) < len(argv) else ""
                for argv in self.calls()]  # fmt: skip


def verb_index(argv: Sequence[str]) -> int:
    """Where the subcommand sits in ``argv`` (after the global flags)."""
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 2 if argv[i] in VALUED_FLAGS else 1
    return i


def write_stand_in(
    directory: Path,
    name: str = "runsc",
    *,
    version: str = "release-20240212.0",
    platforms: Sequence[str] = ("ptrace", "systrap", "kvm"),
    flags: Sequence[str] = DEFAULT_FLAGS,
    containers: Sequence[str] = (),
    fail_verb: str | None = None,
    fail_message: str = "stand-in failure",
    fail_status: int = 1,
) -> StandIn:
    """Write an executable stand-in called ``name`` into ``directory``."""
    log = directory / f"{name}.calls"
    config = {
        "log": str(log), "version": version, "platforms": list(platforms), "flags": list(flags),
        "containers": list(containers), "fail_verb": fail_verb, "fail_message": fail_message,
        "fail_status": fail_status, "valued": list(VALUED_FLAGS),
    }  # fmt: skip
    path = directory / name
    path.write_text(_SCRIPT.format(python=sys.executable, config=json.dumps(config)))
    path.chmod(0o755)
    return StandIn(path, log)
