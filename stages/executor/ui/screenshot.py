"""Screenshot files (§5.5): ``<image_dir>/<YYYYMMDD>_<uuid1>.png``, the id being the file stem.

The PNG is re-encoded with Pillow (``optimize=True``, still PNG: the platform serves ``.png``) and written
to a dot-prefixed temp name first, then renamed, so the uploader never reads a half-written file.
"""
from __future__ import annotations

import io
import os
import time
import uuid
from pathlib import Path

from PIL import Image

__all__ = ["save_screenshot", "compress_png", "SCREENSHOT_ID"]

SCREENSHOT_ID = r"^\d{8}_[0-9a-f-]{36}$"


def compress_png(png: bytes) -> bytes:
    """Losslessly smaller PNG; the input is returned unchanged if Pillow cannot read it or does worse."""
    try:
        with Image.open(io.BytesIO(png)) as img:
            out = io.BytesIO()
            img.save(out, format="PNG", optimize=True)
    except (OSError, ValueError):
        return png
    data = out.getvalue()
    return data if len(data) < len(png) else png


def save_screenshot(png: bytes, image_dir: Path) -> tuple[str, Path]:
    """Write one screenshot atomically; return (id, path)."""
    image_dir.mkdir(parents=True, exist_ok=True)
    shot_id = f"{time.strftime('%Y%m%d')}_{uuid.uuid1()}"
    path = image_dir / f"{shot_id}.png"
    tmp = image_dir / f".{shot_id}.png.tmp"
    tmp.write_bytes(compress_png(png))
    os.replace(tmp, path)
    return shot_id, path
