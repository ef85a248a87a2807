"""The video's frames: Chromium's DevTools screencast in short bursts, at most ``RATE_HZ`` a second.

While a screencast runs, Chromium's frame capturer copies and scales the page on every repaint, whether or
not the frame is then sent: pacing the acknowledgements bounds what is sent, not what is captured (measured
with bench/evidence.py: acknowledgements held, the CPU cost stayed). So the screencast is started, stopped
as soon as one frame arrived, and started again one period after the previous start; between attempts it
does not run at all. ``Page.captureScreenshot`` at the same rate costs more (~50 ms of browser time a
full-size frame here; the screencast's is scaled down in the compositor).

``BurstPacer`` is the pure timing policy (handed the time); ``FramePacer`` applies it for one DevTools tap.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

from stages.executor.web.cdp import CdpClient, CdpError

__all__ = ["RATE_HZ", "SCREENCAST", "BurstPacer", "FramePacer"]

# 3 fps at 640 px: keep = failure within +10 % of never on bench/evidence.py (5 fps at 800 px: +14 %);
# a failed attempt's last frame is taken at failure (``final``), so the video ends on the page that failed
RATE_HZ = 3.0
SCREENCAST = {"format": "jpeg", "quality": 40, "maxWidth": 640, "maxHeight": 640, "everyNthFrame": 1}
FINAL_WAIT_S = 1.0

Sink = Callable[[float, str], None]          # (capture time, JPEG as base64 text)


class BurstPacer:
    """When the next burst may start, asked at ``now``: at once when the previous start is at least one
    period old, else when it becomes so (never several to catch up)."""

    def __init__(self, rate_hz: float) -> None:
        self.period = 1.0 / rate_hz
        self.last: float | None = None

    def due(self, now: float) -> float:
        """The monotonic time at which to start (``<= now``: at once)."""
        return now if self.last is None else max(now, self.last + self.period)

    def started(self, at: float) -> None:
        self.last = at


class FramePacer:
    """Runs the screencast in short bursts: started, stopped again as soon as it delivered a frame, restarted
    one period after the previous start (``BurstPacer``), and not at all without a sink (between attempts)."""

    def __init__(self, client: CdpClient, session: str, rate_hz: float = RATE_HZ) -> None:
        self.client, self.session = client, session
        self.pacer = BurstPacer(rate_hz)
        self.error = ""
        self._sink: Sink | None = None
        self._casting = False
        self._due = 0.0
        self._burst_at = 0.0                   # when the running (or last) burst was started
        self._frame_from = float("-inf")       # when the burst of the last frame delivered was started
        self._final_from: float | None = None  # final() waits for a frame of a burst started after this
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="cdp-screencast", daemon=True)
        self._thread.start()

    def start(self, sink: Sink) -> None:
        """Frames go to ``sink`` from now on (the first burst starts at once)."""
        with self._cond:
            self._sink, self._due = sink, time.monotonic()
            self._cond.notify_all()

    def final(self, timeout: float = FINAL_WAIT_S) -> bool:
        """One more frame now (a failed attempt that is kept: its last state), waited for ≤ ``timeout`` s. Only a
        frame of a burst started after this call counts: one already in flight may show the page before."""
        asked = time.monotonic()
        end = asked + timeout
        with self._cond:
            if self._sink is None or self.error:
                return False
            self._final_from, self._due = asked, asked
            self._cond.notify_all()
            while self._frame_from < asked and time.monotonic() < end:
                self._cond.wait(end - time.monotonic())
            self._final_from = None
            return self._frame_from >= asked

    def stop(self) -> None:
        """No frame reaches the former sink after this returns; the screencast is stopped."""
        with self._cond:
            self._sink = None
            casting, self._casting = self._casting, False
        if casting:
            self._post("Page.stopScreencast", {})

    def close(self) -> None:
        with self._cond:
            self._closed, self._sink = True, None
            self._cond.notify_all()

    def frame(self, params: dict[str, object]) -> None:
        """One ``Page.screencastFrame`` (reader thread): kept base64 (decoded only for a bundle that is kept);
        the burst ends here."""
        meta = params.get("metadata")
        stamp = meta.get("timestamp") if isinstance(meta, dict) else None
        when = float(stamp) if isinstance(stamp, (int, float)) else time.time()
        self._post("Page.screencastFrameAck", {"sessionId": params.get("sessionId")})
        with self._cond:
            sink = self._sink
            if sink is not None:
                sink(when, str(params.get("data") or ""))
                self._frame_from = self._burst_at
            casting, self._casting = self._casting, False
            now = time.monotonic()
            waiting = self._final_from is not None and self._frame_from < self._final_from
            self._due = now if waiting else self.pacer.due(now)     # final() waits: its burst starts at once
            self._cond.notify_all()
        if casting:
            self._post("Page.stopScreencast", {})

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (self._sink is None or self._casting or self.error):
                    self._cond.wait()
                if self._closed:
                    return
                now = time.monotonic()
                if now < self._due:
                    self._cond.wait(self._due - now)
                    continue                       # re-check: stopped, closed or a frame meanwhile
                self._casting, self._burst_at = True, now
                self.pacer.started(now)
            self._post("Page.startScreencast", SCREENCAST)

    def _post(self, method: str, params: dict[str, object]) -> None:
        try:
            self.client.post(method, params, self.session)
        except CdpError as e:
            self.error = self.error or str(e)
