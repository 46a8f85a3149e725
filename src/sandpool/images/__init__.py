"""Images: references turned into read-only root filesystems shared by every container."""
