"""Images: references turned into read-only root filesystems shared by every container."""

from sandpool.images.reference import Reference, Transport, parse_reference
from sandpool.images.store import DEFAULT_IMAGE, Image, ImageStore, choose_reference

__all__ = [
    "DEFAULT_IMAGE",
    "Image",
    "ImageStore",
    "Reference",
    "Transport",
    "choose_reference",
    "parse_reference",
]
