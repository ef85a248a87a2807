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

import time
from dataclasses import dataclass
from typing import Any

from selenium.common.exceptions import UnexpectedAlertPresentException

from stages.executor.web.browser import (
    Browser,
    BrowserConfig,
    BrowserStartError,
    start_browser,
)
from stages.executor.web.remote import reset_remote

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
                self.browser = start_browser(config, command_timeout, driver_log)
            except BrowserStartError as e:
                self.prestart_error = e
                return
            self.starts += 1
            self.cases = 0
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
            self.browser = start_browser(config, command_timeout, driver_log)
            self.starts += 1
            self.cases = 0
        self.open = True
        self.cases += 1
        return self.browser

    def release(self, close: bool, healthy: bool, reuse: bool) -> None:
        """End of a case: keep the browser open, park it, or quit it."""
        if not close:
            return
        self.open = False
        self.parked_at = time.monotonic()
        if not (reuse and healthy):
            self.close()

    def close(self) -> None:
        self.fresh = False
        if self.browser is not None:
            browser, self.browser, self.open = self.browser, None, False
            browser.quit()


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
