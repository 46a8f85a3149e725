"""``sandpool up`` with real processes: it starts redis-server, a gateway and a worker of
each configured pool; a sandbox of each pool is created through the SDK with the admin key
it printed and runs on its runtime; SIGTERM stops everything (the running sandboxes are
terminated) and nothing is left: no process, container, cgroup, mount or Redis socket.
Bad input (a missing configuration file, no redis-server) is one line and nothing started."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from sandpool.client import Client, Sandbox
from tests.integration.conftest import reachable_tmp_dir
from tests.integration.dispatch.processes import SANDPOOL, box_of
from tests.integration.dispatch.redis_server import HAVE_REDIS, WHY_NO_REDIS
from tests.integration.service.conftest import KEY_LINE, free_port

HOST_KERNEL = os.uname().release


def _descendants(pid: int) -> set[tuple[int, str]]:
    """(pid, start time) of every process under ``pid``."""
    parents: dict[int, list[tuple[int, str]]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append((int(stat.parent.name), fields[19]))
    found, todo = set(), [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.add(child)
            todo.append(child[0])
    return found


def _alive(process: tuple[int, str]) -> bool:
    try:
        fields = Path(f"/proc/{process[0]}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[19] == process[1] and fields[0] != "Z"


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text(errors="replace")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(log.read_text(errors="replace"))


@pytest.mark.root
@pytest.mark.runc
@pytest.mark.runsc
@pytest.mark.skipif(not HAVE_REDIS, reason=WHY_NO_REDIS)
def test_up_runs_a_deployment_and_sigterm_leaves_nothing() -> None:
    with reachable_tmp_dir() as base:
        box = box_of(base, "up")
        port, out, err = free_port(), base / "up.out", base / "up.err"
        env = {k: v for k, v in os.environ.items()
               if k not in ("SANDPOOL_ADMIN_KEY", "SANDPOOL_WORKER_TOKEN")}  # fmt: skip
        argv = [SANDPOOL, "up", "-c", str(box.config_file), "--listen", f"127.0.0.1:{port}",
                "--no-socket"]  # fmt: skip
        up = subprocess.Popen(argv, stdout=out.open("wb"), stderr=err.open("wb"), env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(url, up, err)
            match = KEY_LINE.search(out.read_text())
            assert match, out.read_text()
            with Client(url, match[1]) as admin:
                admin.create_tenant("up")
                key = admin.create_key("up").key
            runc = Sandbox.create(pool="performance", url=url, api_key=key)
            gvisor = Sandbox.create(pool="default", url=url, api_key=key)
            assert runc.exec(["uname", "-r"]).stdout.decode().strip() == HOST_KERNEL
            assert gvisor.exec(["uname", "-r"]).stdout.decode().strip() != HOST_KERNEL
            runc.close()
            gvisor.close()  # both left running: stopping must end them
            children = _descendants(up.pid)
            assert len(children) >= 4, children  # redis, gateway, two workers
            assert re.search(r"Redis at unix://\S+ \(pid \d+\)", err.read_text())
            up.send_signal(signal.SIGTERM)
            assert up.wait(240) == 0, err.read_text(errors="replace")[-3000:]
        finally:
            if up.poll() is None:
                up.kill()
                up.wait()
        alive = [p for p in children if _alive(p)]
        left = box.leftovers()
        box.remove_parent_cgroups()
        assert not alive, alive
        assert not left, f"leaked: {left}"
        assert not (box.state_dir / "up" / "redis.sock").exists()


def test_up_with_a_missing_config_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = subprocess.run([SANDPOOL, "up", "-c", str(tmp_path / "none.yaml")],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "none.yaml" in done.stderr


def test_up_without_redis_server_names_it_and_starts_nothing(tmp_path: Path) -> None:
    config = tmp_path / "pools.yaml"
    config.write_text(f"worker:\n  stateDir: {tmp_path / 'state'}\n  pools:\n"
                      "    default:\n      containerRuntime: runc\n")  # fmt: skip
    env = {**os.environ, "PATH": str(tmp_path / "empty")}
    done = subprocess.run([SANDPOOL, "up", "-c", str(config)], capture_output=True, text=True,
                          timeout=60, env=env)  # fmt: skip
    assert done.returncode == 125, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "redis-server" in lines[0], done.stderr
    assert not (tmp_path / "state").exists()
