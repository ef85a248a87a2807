"""A spare local Chromium started on a background thread while the current case still runs, so the browser
that replaces a worn one (``[Capacity] recycle-cases`` / ``recycle-rss-mb``) or a crashed one costs the next
case nothing and the executor as little wall as possible: ``prepare`` takes the spare instead of starting one.

Bounded by capacity: a spare is one more browser in memory, so it is started only while the host has room
for it (``pipeline.capacity.spare_room``: available memory above ``min-free-mb`` by one measured browser, and
``/dev/shm``); else the replacement is started by ``prepare`` as before. Local Chromium only: a Grid session
started early would hold a slot someone else may be waiting for.
"""
from __future__ import annotations

import logging
import threading
import time

from pipeline.capacity import Limits, spare_room
from pipeline.capacity_probe import measure
from stages.executor.web.browser import Browser, BrowserConfig, BrowserStartError, start_browser

__all__ = ["Spare"]

log = logging.getLogger("stages.executor")


class Spare:
    """One browser being started (or started) in the background for ``config``."""

    def __init__(self, config: BrowserConfig, command_timeout: float, driver_log: bool) -> None:
        self.config = config
        self.browser: Browser | None = None
        self.error: BrowserStartError | None = None
        self.t0 = time.monotonic()
        self._abandoned = False
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._start, args=(command_timeout, driver_log), name="spare-browser",
                                       daemon=True)
        self.thread.start()

    @classmethod
    def maybe(cls, config: BrowserConfig, command_timeout: float, driver_log: bool, limits: Limits,
              browser_mb: float) -> Spare | None:
        """A spare when the config is local and the host has room for one more browser, else None (logged)."""
        if config.mode == "remote":
            return None
        try:
            why = spare_room(measure(browser_mb), limits)
        except OSError as e:
            why = f"host not measured ({e})"
        if why:
            log.info("no spare browser: %s", why)
            return None
        return cls(config, command_timeout, driver_log)

    def _start(self, command_timeout: float, driver_log: bool) -> None:
        try:
            browser = start_browser(self.config, command_timeout, driver_log)
        except BrowserStartError as e:
            self.error = e
            return
        except Exception as e:  # noqa: BLE001 - a spare that fails is no spare: prepare starts one as before
            self.error = BrowserStartError(f"spare browser: {type(e).__name__}: {e}")
            return
        with self._lock:
            if not self._abandoned:
                self.browser = browser
                return
        browser.quit()                           # dropped while it started: nobody will take it

    def take(self, config: BrowserConfig, timeout: float = 120.0) -> Browser | None:
        """The spare browser for ``config`` (waits for its start to end); None if it failed or differs."""
        self.thread.join(timeout)
        with self._lock:
            browser, self.browser = self.browser, None
            if browser is None:
                self._abandoned = True
        if browser is not None and browser.config != config:
            browser.quit()
            return None
        return browser

    def drop(self) -> None:
        """Not needed after all: quit it (now, or when its start ends)."""
        with self._lock:
            browser, self.browser, self._abandoned = self.browser, None, True
        if browser is not None:
            browser.quit()
