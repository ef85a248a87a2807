"""The video's frames: Chromium's DevTools screencast, paced by when we acknowledge its frames.

Chromium sends a screencast frame only while fewer than three are unacknowledged, and captures one only
when the page repaints. Acknowledging a frame no sooner than ``1 / RATE_HZ`` s after the previous one bounds
the frames encoded, sent and parsed to ``RATE_HZ`` a second whatever the page paints; holding the
acknowledgement between attempts stops the frames until the next recorded attempt begins (a reused browser
pays nothing between cases). Measured alternatives (bench/evidence.py): an unpaced screencast and
``Page.captureScreenshot`` at 4 fps (~50 ms of browser time each on this machine) both cost far more.

``AckPacer`` is the pure timing policy (handed the time); ``FramePacer`` applies it for one DevTools tap.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

from stages.executor.web.cdp import CdpClient, CdpError

__all__ = ["RATE_HZ", "SCREENCAST", "AckPacer", "FramePacer"]

RATE_HZ = 5.0                # 5 fps: each step (type, click, navigation) is seen; a bounded cost
# 800 px wide at quality 40: readable text, ~15-30 KB a frame, the capture scaled down in the browser
SCREENCAST = {"format": "jpeg", "quality": 40, "maxWidth": 800, "maxHeight": 800, "everyNthFrame": 1}

Sink = Callable[[float, str], None]          # (capture time, JPEG as base64 text)


class AckPacer:
    """When to acknowledge a frame received at ``now``: at once when the previous acknowledgement is at
    least one period old, else when it becomes so (never a burst to catch up)."""

    def __init__(self, rate_hz: float) -> None:
        self.period = 1.0 / rate_hz
        self.last: float | None = None

    def due(self, now: float) -> float:
        """The monotonic time at which to acknowledge (``<= now``: at once)."""
        return now if self.last is None else max(now, self.last + self.period)

    def acked(self, at: float) -> None:
        self.last = at


class FramePacer:
    """Receives ``Page.screencastFrame`` events (reader thread), hands frames to the attempt's ``sink`` and
    acknowledges them on time from its own thread; without a sink the acknowledgement is held."""

    def __init__(self, client: CdpClient, session: str, rate_hz: float = RATE_HZ) -> None:
        self.client, self.session = client, session
        self.pacer = AckPacer(rate_hz)
        self.error = ""
        self.started = False
        self._sink: Sink | None = None
        self._pending: object = None           # the screencast session id of the frame awaiting its ack
        self._due = 0.0
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="cdp-frame-acks", daemon=True)
        self._thread.start()

    def start(self, sink: Sink) -> None:
        """Frames go to ``sink`` from now on; the screencast is started once per tap (runs while the browser
        lives), a held acknowledgement is released so the browser sends again."""
        with self._cond:
            self._sink = sink
            if self._pending is not None:
                self._due = time.monotonic()
                self._cond.notify_all()
        if not self.started and not self.error:
            try:
                self.client.send("Page.startScreencast", SCREENCAST, self.session)
                self.started = True
            except CdpError as e:
                self.error = str(e)

    def stop(self) -> None:
        """No frame reaches the former sink after this returns."""
        with self._cond:
            self._sink = None

    def close(self) -> None:
        with self._cond:
            self._closed, self._sink = True, None
            self._cond.notify_all()

    def frame(self, params: dict[str, object]) -> None:
        """One ``Page.screencastFrame`` (reader thread): kept base64 (decoded only for a bundle that is kept)."""
        meta = params.get("metadata")
        stamp = meta.get("timestamp") if isinstance(meta, dict) else None
        when = float(stamp) if isinstance(stamp, (int, float)) else time.time()
        with self._cond:
            sink = self._sink
            if sink is not None:
                sink(when, str(params.get("data") or ""))
            self._pending = params.get("sessionId")
            if sink is not None:
                self._due = self.pacer.due(time.monotonic())
                self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (self._pending is None or self._sink is None):
                    self._cond.wait()
                if self._closed:
                    return
                now = time.monotonic()
                if now < self._due:
                    self._cond.wait(self._due - now)
                    continue                       # re-check: stopped, closed or a newer frame meanwhile
                pending, self._pending = self._pending, None
                self.pacer.acked(now)
            try:
                self.client.post("Page.screencastFrameAck", {"sessionId": pending}, self.session)
            except CdpError as e:
                self.error = self.error or str(e)
