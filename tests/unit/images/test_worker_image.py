"""``sandpool images build-worker``: the builder's command line, with a stand-in podman.

The real build is tests/integration/test_worker_image.py (opt-in: minutes, network).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from sandpool.cli.main import cli
from sandpool.errors import ImageError
from sandpool.images.worker_image import WorkerBuild, find_context, pick_tool

CHECKOUT = Path(__file__).resolve().parents[3]


@pytest.fixture
def fake_podman(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``podman`` on PATH that logs its argv and exits with $FAKE_PODMAN_EXIT."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "argv.log"
    script = bin_dir / "podman"
    script.write_text(
        f'#!/bin/sh\necho "$@" > {log}\necho building...\nexit ${{FAKE_PODMAN_EXIT:-0}}\n'
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    for name in [n for n in os.environ if n.startswith("SANDPOOL_")]:
        monkeypatch.delenv(name)
    return log


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, ["images", "build-worker", *args], env=env)


def test_argv_of_podman_and_buildah(tmp_path: Path) -> None:
    build = WorkerBuild(tmp_path, "r.example/w:1", base="debian:12", ca_file=Path("/ca.crt"))
    assert build.argv() == [
        "podman", "build", "-f", f"{tmp_path}/Containerfile", "-t", "r.example/w:1",
        "--build-arg", "BASE=debian:12", "--secret", "id=build-ca,src=/ca.crt", str(tmp_path),
    ]  # fmt: skip
    buildah = WorkerBuild(tmp_path, "w:1", tool="buildah").argv()
    assert buildah[:2] == ["buildah", "bud"] and "--build-arg" not in buildah


def test_the_checkout_is_found_and_a_wrong_one_named(tmp_path: Path) -> None:
    assert find_context() == CHECKOUT
    assert (CHECKOUT / "Containerfile").is_file()
    with pytest.raises(ImageError, match=f"no Containerfile and pyproject.toml in {tmp_path}"):
        find_context(tmp_path)


def test_no_builder_is_one_clear_error() -> None:
    with pytest.raises(ImageError, match="podman or buildah not found"):
        pick_tool(None, which=lambda _: None)
    assert pick_tool(None, which=lambda t: t if t == "buildah" else None) == "buildah"


def test_default_tag_is_what_the_rendered_objects_run(fake_podman: Path, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("worker:\n  imageRegistry: registry.example.com/team\n  imageTag: v2\n")
    result = run("-c", str(config))
    assert result.exit_code == 0, result.output
    argv = fake_podman.read_text().split()
    assert argv[:2] == ["build", "-f"]
    assert argv[argv.index("-t") + 1] == "registry.example.com/team/sandpool-worker:v2"
    assert argv[-1] == str(CHECKOUT)
    assert result.stdout.endswith("built registry.example.com/team/sandpool-worker:v2\n")


def test_a_failed_build_is_one_line_and_the_exit_status(fake_podman: Path) -> None:
    result = run("--tag", "localhost/x:1", env={"FAKE_PODMAN_EXIT": "3"})
    assert result.exit_code != 0
    assert result.stderr.splitlines()[-1].startswith(
        "ImageError: podman build of localhost/x:1 failed (exit 3)"
    )
    assert "Traceback" not in result.output


def test_bad_context_is_a_clear_error(fake_podman: Path, tmp_path: Path) -> None:
    result = run("--context", str(tmp_path))
    assert result.exit_code != 0
    assert "ImageError: no Containerfile" in result.stderr
    assert "pass --context DIR" in result.stderr
    assert not fake_podman.exists()  # nothing was run
