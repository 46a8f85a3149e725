"""``sandpool images``: list, pull, inspect, remove and prune cached images; build the default
image and the worker image."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from sandpool.cli.options import Number, config_option, load
from sandpool.config.quantities import TIMEOUT_RANGE
from sandpool.images import DEFAULT_IMAGE, Image, ImageStore, choose_reference

__all__ = ["images"]


def _store(config_files: tuple[str, ...], timeout: float | None = None) -> ImageStore:
    resolved = load(config_files, quiet=True).resolved
    if timeout is None:
        return ImageStore(Path(resolved.state_dir))
    return ImageStore(Path(resolved.state_dir), pull_timeout=timeout)


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{size} B"
        value /= 1000
    return f"{size} B"  # unreachable; keeps mypy sure of the return


def as_json(image: Image) -> dict[str, Any]:
    """An image as the JSON object ``ls --json`` and ``inspect`` print."""
    return {
        "reference": image.reference,
        "digest": image.digest,
        "rootfs": str(image.rootfs),
        "env": list(image.env),
        "workingDir": image.working_dir,
        "user": image.user,
        "entrypoint": list(image.entrypoint),
        "cmd": list(image.cmd),
        "sizeBytes": image.size_bytes,
        "created": image.created,
    }


def _summary(image: Image) -> str:
    return f"{image.reference}  {image.digest}  {_human(image.size_bytes)}"


@click.group()
def images() -> None:
    """Images: pull any OCI image once into a shared read-only cache."""


@images.command("ls")
@config_option
@click.option("--json", "json_out", is_flag=True, help="Print a JSON array.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the references.")
def ls(config_files: tuple[str, ...], json_out: bool, quiet: bool) -> None:
    """List cached images: reference, digest, unpacked size, created."""
    found = _store(config_files).list()
    if json_out:
        click.echo(json.dumps([as_json(i) for i in found], indent=2))
        return
    if quiet:
        for image in found:
            click.echo(image.reference)
        return
    rows = [("REFERENCE", "DIGEST", "SIZE", "CREATED")]
    rows += [(i.reference, i.digest[7:19], _human(i.size_bytes), i.created[:19]) for i in found]
    widths = [max(len(row[c]) for row in rows) for c in range(3)]
    for row in rows:
        click.echo("  ".join([*(row[c].ljust(widths[c]) for c in range(3)), row[3]]))


@images.command()
@config_option
@click.option("--timeout", type=Number(TIMEOUT_RANGE, "seconds"), default=None, metavar="S",
              help="Give up after S seconds.")  # fmt: skip
@click.argument("references", nargs=-1, required=True)
def pull(config_files: tuple[str, ...], timeout: float | None, references: tuple[str, ...]) -> None:
    """Fetch and unpack images now, even if cached (a moved tag, a rebuilt archive)."""
    store = _store(config_files, timeout)
    for reference in references:
        click.echo(_summary(store.pull(reference)))


@images.command()
@config_option
@click.argument("reference", required=False)
def inspect(config_files: tuple[str, ...], reference: str | None) -> None:
    """Print one image (pulled if needed) as JSON; without REFERENCE, the default image."""
    resolved = load(config_files, quiet=True).resolved
    store = ImageStore(Path(resolved.state_dir))
    image = store.get(choose_reference(reference, resolved.default_image))
    click.echo(json.dumps(as_json(image), indent=2))


@images.command()
@config_option
@click.argument("references", nargs=-1, required=True)
def rm(config_files: tuple[str, ...], references: tuple[str, ...]) -> None:
    """Forget references or digests; delete the images nothing else refers to."""
    store = _store(config_files)
    for reference in references:
        store.remove(reference)
        click.echo(f"removed {reference}")


@images.command()
@config_option
@click.option("--all", "everything", is_flag=True, help="Also delete referenced images not in use.")
def prune(config_files: tuple[str, ...], everything: bool) -> None:
    """Delete unreferenced images and leftovers of interrupted pulls."""
    removed = _store(config_files).prune(everything=everything)
    for image in removed:
        click.echo(f"deleted {_summary(image)}")
    total = sum(i.size_bytes for i in removed)
    click.echo(f"{len(removed)} image(s) deleted, {_human(total)} freed")


@images.command("build-default")
@config_option
@click.option("--force", is_flag=True, help="Rebuild even if it is cached.")
def build_default(config_files: tuple[str, ...], force: bool) -> None:
    """Build the default image (busybox sh + Debian python3) from this host's files."""
    store = _store(config_files)
    image = store.pull(DEFAULT_IMAGE) if force else store.get(DEFAULT_IMAGE)
    click.echo(f"default image {_summary(image)} at {image.rootfs}")


@images.command("build-worker")
@config_option
@click.option("--tag", default=None, metavar="REF",
              help="Image reference (default: worker.imageRegistry/imageName:imageTag, what "
                   "`sandpool k8s render` runs).")  # fmt: skip
@click.option("--base", default=None, metavar="IMAGE",
              help="A Debian bookworm image to build on (default: the Containerfile's, "
                   "docker.io/library/debian:bookworm-slim).")  # fmt: skip
@click.option("--context", "context_dir", default=None, metavar="DIR",
              type=click.Path(file_okay=False, path_type=Path),
              help="The sandpool checkout (default: the one this sandpool runs from).")  # fmt: skip
@click.option("--tool", type=click.Choice(["podman", "buildah"]), default=None,
              help="Builder (default: podman if on PATH, else buildah).")  # fmt: skip
@click.option("--ca-file", default=None, metavar="FILE",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CA bundle pip trusts during the build (a TLS-intercepting proxy's); "
                   "passed as a build secret, not kept in the image.")  # fmt: skip
def build_worker(config_files: tuple[str, ...], tag: str | None, base: str | None,
                 context_dir: Path | None, tool: str | None,
                 ca_file: Path | None) -> None:  # fmt: skip
    """Build the worker/gateway image from this checkout's Containerfile."""
    from sandpool.controller.workers import worker_image
    from sandpool.images.worker_image import (
        WorkerBuild,
        build_worker_image,
        find_context,
        pick_tool,
    )

    reference = tag or worker_image(load(config_files, quiet=True).model.worker)
    build = WorkerBuild(find_context(context_dir), reference, base, pick_tool(tool), ca_file)
    click.echo(f"building {reference}: {' '.join(build.argv())}", err=True)
    build_worker_image(build)
    click.echo(f"built {reference}")
