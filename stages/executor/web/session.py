"""The browser of one collection (§5.1 ``startDriver``/``closeDriver``) kept in ``ctx.shared``.

Policy (measured in bench/web.py and the tests, documented in the report):
- ``startDriver`` true with a browser already held whose configuration is identical → the browser is
  *reset* (alerts dismissed, extra windows closed, ``about:blank``, all cookies/storage/cache and the
  navigation history cleared through CDP, implicit wait 0): ~0.05-0.1 s instead of ~1-1.4 s for a new Chromium. A
  remote (Grid) session is reset the same way through plain WebDriver and the Grid's ``se:cdp`` (``remote``). A
  different configuration, a reset that fails (a session the Grid dropped) or ``reuse = false`` → quit and start
  a new one.
- ``closeDriver`` true → the browser is *parked* (kept, but a following ``startDriver`` false case gets
  the original error "无法找到已启动的浏览器进程…", as if it had been quit). After a case that ended in an
  error the browser is quit instead of parked, so a confused browser never leaks into the next case.
- Between collections the host calls ``reset_shared``: the browser is parked as after ``closeDriver`` and
  the next ``startDriver`` case resets it, so no cookie, storage, cache, window or history crosses a
  collection boundary (what a reset cannot clear, e.g. permissions granted through custom code, would;
  ``reuse = false`` quits instead). ``close_shared`` (shutdown) quits the browser and deletes its profile.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from selenium.common.exceptions import UnexpectedAlertPresentException

from pipeline.capacity import Limits
from stages.executor.web.browser import (
    Browser,
    BrowserConfig,
    BrowserStartError,
    start_browser,
)
from stages.executor.web.remote import reset_remote
from stages.executor.web.spare import Spare

__all__ = ["NO_BROWSER", "SHARED_KEY", "BrowserSlot", "NoBrowserError", "reset_browser"]

SHARED_KEY = "web.browser"
NO_BROWSER = "无法找到已启动的浏览器进程 请检查用例开关驱动配置"


class NoBrowserError(LookupError):
    """``startDriver`` false but no browser was left open by a previous case of the collection."""


@dataclass(slots=True)
class BrowserSlot:
    """What ``ctx.shared[SHARED_KEY]`` holds: the browser and whether a case left it open."""

    browser: Browser | None = None
    open: bool = False
    starts: int = 0          # new browsers started for this collection (tests and bench read it)
    resets: int = 0
    fresh: bool = False      # ``browser`` was reset or started by ``prepare``: the next case takes it as is
    prestart_error: BrowserStartError | None = None    # ``prepare`` failed: the next case reports it
    cases: int = 0           # cases served by ``browser`` (recycling)
    parked_at: float = 0.0   # monotonic time the last case released the browser (a Grid session's idle time)
    spare: Spare | None = None    # the replacement being started in the background (``spare``)
    spares: int = 0          # new browsers that were a spare, started off the case path (tests and bench)
    _retiring: list[threading.Thread] = field(default_factory=list)   # worn browsers quitting (``retire``)

    def prepare(self, config: BrowserConfig, reuse: bool, command_timeout: float, driver_log: bool = False) -> None:
        """Before a ``startDriver`` case's clock starts: reset the parked browser or start a new one (for a
        remote browser: wait in the Grid's session queue), so the case itself pays nothing. A failure is
        kept for the case to report."""
        self.prestart_error = None
        if self.open:
            return
        if self.browser is not None and reuse and self.browser.config == config and reset_browser(self.browser):
            self.resets += 1
        else:
            self.close()
            try:
                self.browser = self._new(config, command_timeout, driver_log)
            except BrowserStartError as e:
                self.prestart_error = e
                return
        self.fresh = True

    def acquire(self, config: BrowserConfig, start: bool, reuse: bool, command_timeout: float,
                driver_log: bool = False) -> Browser:
        """The browser for a case; raises NoBrowserError or BrowserStartError."""
        if not start:
            if self.browser is None or not self.open:
                raise NoBrowserError(NO_BROWSER)
            return self.browser
        fresh, self.fresh = self.fresh, False
        if self.prestart_error is not None:
            error, self.prestart_error = self.prestart_error, None
            raise error
        if fresh and self.browser is not None and self.browser.config == config:
            self.open = True
            self.cases += 1
            return self.browser
        if self.browser is not None and reuse and self.browser.config == config and reset_browser(self.browser):
            self.resets += 1
        else:
            self.close()
            self.browser = self._new(config, command_timeout, driver_log)
        self.open = True
        self.cases += 1
        return self.browser

    def _new(self, config: BrowserConfig, command_timeout: float, driver_log: bool) -> Browser:
        """A new browser: the spare started in the background when there is one for ``config``, else now."""
        spare, self.spare = self.spare, None
        browser = spare.take(config) if spare is not None else None
        if browser is not None:
            self.spares += 1
        else:
            browser = start_browser(config, command_timeout, driver_log)
        self.starts += 1
        self.cases = 0
        return browser

    def start_spare(self, config: BrowserConfig, command_timeout: float, driver_log: bool, limits: Limits,
                    browser_mb: float = 0.0) -> None:
        """Start the replacement of this browser in the background (``spare``), unless one is under way."""
        if self.spare is None:
            self.spare = Spare.maybe(config, command_timeout, driver_log, limits, browser_mb)

    def release(self, close: bool, healthy: bool, reuse: bool) -> None:
        """End of a case: keep the browser open, park it, or quit it."""
        if not close:
            return
        self.open = False
        self.parked_at = time.monotonic()
        if not (reuse and healthy):
            self.close()

    def close(self) -> None:
        """Quit the browser (a spare under way is kept: it is the replacement)."""
        self.fresh = False
        if self.browser is not None:
            browser, self.browser, self.open = self.browser, None, False
            browser.quit()

    def retire(self) -> None:
        """A worn browser: quit on a background thread (~0.3 s), so neither the next case nor the executor
        waits for it; ``close_all`` waits for the ones still quitting."""
        self.fresh = False
        if self.browser is not None:
            browser, self.browser, self.open = self.browser, None, False
            t = threading.Thread(target=browser.quit, name="retire-browser", daemon=True)
            t.start()
            self._retiring = [r for r in self._retiring if r.is_alive()] + [t]

    def close_all(self) -> None:
        """Shutdown or end of the collection's browser: the browser and any spare."""
        spare, self.spare = self.spare, None
        if spare is not None:
            spare.drop()
        self.close()
        for t in self._retiring:
            t.join(30)
        self._retiring = []


def reset_browser(browser: Browser) -> bool:
    """Bring a used browser back to a fresh state; False if it cannot be done (then start a new one).

    Measured (bench/web.py): the navigation dominates; the rest is one round trip each, none spent on
    checks: an open alert is dismissed by chromedriver's default prompt handling when ``get`` meets it.
    The page is unloaded *before* storage is cleared so its unload handlers cannot write into the next case.
    """
    driver: Any = browser.driver
    if browser.config.mode == "remote":
        return reset_remote(browser)      # plain WebDriver, plus the Grid's se:cdp when it offers it
    if not hasattr(driver, "execute_cdp_cmd"):
        return False
    try:
        handles = driver.window_handles
        for handle in handles[1:]:
            driver.switch_to.window(handle)
            driver.close()
        driver.switch_to.window(handles[0])
        try:
            driver.get("about:blank")
        except UnexpectedAlertPresentException:
            driver.get("about:blank")                 # the alert was dismissed by the failed attempt
        driver.execute_cdp_cmd("Storage.clearDataForOrigin", {"origin": "*", "storageTypes": "all"})  # cookies too
        driver.execute_cdp_cmd("Network.clearBrowserCache", {})
        driver.execute_cdp_cmd("Page.resetNavigationHistory", {})     # 后退 must not reach the last case's pages
        driver.implicitly_wait(0)
        if browser.initial_rect:
            driver.set_window_rect(**browser.initial_rect)
        return True
    except Exception:  # noqa: BLE001 - a browser that cannot be reset is replaced, whatever went wrong
        return False
