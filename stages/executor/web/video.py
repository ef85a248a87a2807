"""Screencast frames (JPEG + capture time) -> a WebM (VP8) that Chromium plays, encoded by Debian's ffmpeg.

Frames arrive only when the page repaints, so each is shown until the next one (ffmpeg's concat demuxer with
per-file durations); the last is held until the attempt ended. Encoding runs only for a bundle that is
kept (a passing attempt under ``keep = failure`` costs the frames in memory, not an encode).
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections import deque
from pathlib import Path
from typing import Any

__all__ = ["FrameBuffer", "encode_webm", "VideoError", "FFMPEG"]

FFMPEG = "ffmpeg"
MIN_HOLD_S = 0.5            # the last frame (or a single one) is shown at least this long


class VideoError(Exception):
    """No ffmpeg, or ffmpeg failed (its last stderr lines are the message)."""


class FrameBuffer:
    """The attempt's frames, oldest dropped first once ``max_bytes`` is reached (the end matters most)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.frames: deque[tuple[float, Any]] = deque()
        self.bytes = 0
        self.dropped = 0
        self.total = 0

    def add(self, when: float, jpeg: Any, size: int | None = None) -> None:
        """``jpeg``: the frame (bytes, or still base64 text with its decoded ``size``)."""
        self.frames.append((when, jpeg))
        self.bytes += len(jpeg) if size is None else size
        self.total += 1
        while self.bytes > self.max_bytes and len(self.frames) > 1:
            _, old = self.frames.popleft()
            self.bytes -= len(old) if isinstance(old, bytes) else len(old) * 3 // 4
            self.dropped += 1


def encode_webm(frames: list[tuple[float, bytes]], end: float, out: Path, timeout: float = 120.0) -> float:
    """Write ``out`` (WebM/VP8, even dimensions); returns the video's duration in seconds."""
    if not frames:
        raise VideoError("no screencast frame was received")
    ffmpeg = shutil.which(FFMPEG)
    if ffmpeg is None:
        raise VideoError("ffmpeg is not installed (apt-get install ffmpeg)")
    frames = sorted(frames, key=lambda f: f[0])
    work = Path(tempfile.mkdtemp(prefix="liuma-video-"))
    try:
        lines, total = ["ffconcat version 1.0"], 0.0
        for i, (when, jpeg) in enumerate(frames):
            (work / f"{i:06d}.jpg").write_bytes(jpeg)
            nxt = frames[i + 1][0] if i + 1 < len(frames) else max(end, when + MIN_HOLD_S)
            hold = max(0.04, nxt - when)
            total += hold
            lines += [f"file {i:06d}.jpg", f"duration {hold:.3f}"]
        lines.append(f"file {len(frames) - 1:06d}.jpg")       # the concat demuxer drops the last duration otherwise
        (work / "list.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        cmd = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(work / "list.txt"),
               "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2,fps=10", "-c:v", "libvpx", "-b:v", "800k", "-threads", "1",
               "-deadline", "realtime", "-cpu-used", "16", "-pix_fmt", "yuv420p", "-an", str(out)]
        try:
            proc = subprocess.run(cmd, cwd=work, capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as e:
            raise VideoError(f"ffmpeg took longer than {timeout:g} s") from e
        if proc.returncode != 0 or not out.is_file():
            tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
            raise VideoError(f"ffmpeg exited {proc.returncode}: {' | '.join(tail)}")
        return total
    finally:
        shutil.rmtree(work, ignore_errors=True)
