"""A remote (Selenium Grid) browser kept between cases instead of a new session per case (~1.5-9 s each on a
loaded host): the reset through plain WebDriver and, when the Grid offers ``se:cdp``, through DevTools; and
when to give the session back to the Grid so that no one waits in its queue behind an idle executor.

Reset (``reset_remote``), in this order, every step one round trip:
- every window but the first is closed; before a page is left, its origin's ``localStorage`` and
  ``sessionStorage`` are cleared by ``execute_script`` and its cookies deleted (WebDriver cookies are per
  current document: they can only be deleted while it is shown);
- the first window goes to ``about:blank``;
- with ``se:cdp``: ``Storage.clearDataForOrigin`` of every origin (``*``, on the page's session: the browser
  target answers "Internal error"), ``Network.clearBrowserCache`` and ``Page.resetNavigationHistory``;
  without it, a case that left a page it cannot clear any more (a window's history holds more than the
  page it ends on, counted from the last reset) makes the reset fail, so a new session is started instead (state never leaks);
- implicit wait 0, the session's first page-load/script timeouts and window size again.
A reset that fails for any reason (the Grid dropped the session: idle timeout, node gone) returns False and
the caller starts a new session, before the case's clock starts.

Release (``release_due``): a parked remote session is given back when the Grid's queue holds a request and
we held it at least ``hold`` seconds (at a case boundary; at once when the executor is idle or between
units), and when it idled ``idle`` seconds (kept below the Grid's ``session-timeout``, 300 s by default).
"""
from __future__ import annotations

import json
import urllib.request
from typing import Any

from selenium.webdriver.common.timeouts import Timeouts

from stages.executor.web.cdp import CdpClient, CdpError

__all__ = ["GRID_HOLD_S", "GRID_IDLE_S", "grid_queue_length", "release_due", "remote_cdp", "reset_remote"]

GRID_HOLD_S = 60.0      # [WebDriver] grid-hold: a session someone queues for is kept this long at most
GRID_IDLE_S = 60.0      # [WebDriver] grid-idle: an idle session is given back after this long (< session-timeout)

_CLEAR_ORIGIN = "try { localStorage.clear(); } catch (e) {} try { sessionStorage.clear(); } catch (e) {}"


def remote_cdp(browser: Any) -> CdpClient | None:
    """The browser's own DevTools connection through the Grid's ``se:cdp`` (opened once, kept on the browser);
    None when the Grid offers none or it cannot be reached."""
    client = getattr(browser, "cdp", None)
    if client is not None and not client.closed:
        return client            # type: ignore[no-any-return]
    url = (getattr(browser.driver, "capabilities", None) or {}).get("se:cdp")
    if not isinstance(url, str) or not url.startswith("ws"):
        return None
    try:
        browser.cdp = CdpClient(url, lambda method, params, session: None, timeout=10.0)
    except CdpError:
        browser.cdp = None
    return browser.cdp        # type: ignore[no-any-return]


def _leave_page(driver: Any) -> None:
    """Clear what WebDriver can clear of the shown document's origin before it is left."""
    try:
        url = str(driver.current_url or "")
    except Exception:  # noqa: BLE001 - an alert or a dead page: the CDP clear (or a new session) covers it
        return
    if url.startswith(("http://", "https://")):
        driver.execute_script(_CLEAR_ORIGIN)
        driver.delete_all_cookies()


def reset_remote(browser: Any) -> bool:
    """Bring a parked remote session back to a fresh state; False when it cannot be done (start a new one)."""
    driver = browser.driver
    try:
        handles = driver.window_handles            # the Grid dropped the session: raises here, at once
        deep = False
        for handle in reversed(handles):
            driver.switch_to.window(handle)
            _leave_page(driver)
            base = browser.history_base if handle == handles[0] else 0
            deep = deep or int(driver.execute_script("return history.length") or 1) - base > 1
            if handle != handles[0]:
                driver.close()
        driver.switch_to.window(handles[0])
        driver.get("about:blank")
        cdp = remote_cdp(browser)
        if cdp is not None:
            _cdp_clear(cdp)
        elif deep:
            return False         # origins left earlier in the case: only DevTools could clear them
        else:
            browser.history_base = int(driver.execute_script("return history.length") or 1)
        driver.implicitly_wait(0)
        initial = (getattr(driver, "capabilities", None) or {}).get("timeouts") or {}
        if initial:
            driver.timeouts = Timeouts(page_load=initial.get("pageLoad", 300000) / 1000,
                                       script=initial.get("script", 30000) / 1000)
        browser.budget = -1.0        # the next case sets its page-load/script and HTTP timeouts again
        if browser.initial_rect:
            driver.set_window_rect(**browser.initial_rect)
        return True
    except Exception:  # noqa: BLE001 - a session that cannot be reset is replaced, whatever went wrong
        return False


def _cdp_clear(cdp: CdpClient) -> None:
    targets = cdp.send("Target.getTargets").get("targetInfos") or []
    page = next((t for t in targets if t.get("type") == "page"), None)
    if page is None:
        raise CdpError("no page target to reset")
    session = str(cdp.send("Target.attachToTarget", {"targetId": page["targetId"], "flatten": True})["sessionId"])
    try:
        cdp.send("Storage.clearDataForOrigin", {"origin": "*", "storageTypes": "all"}, session=session)
        cdp.send("Network.clearBrowserCache", {}, session=session)
        cdp.send("Page.resetNavigationHistory", {}, session=session)   # 后退 must not reach the last case's pages
    finally:
        try:
            cdp.send("Target.detachFromTarget", {"sessionId": session})
        except CdpError:
            pass


def grid_queue_length(url: str, timeout: float = 2.0) -> int:
    """Requests waiting in a Selenium Grid 4's session queue (``GET /se/grid/newsessionqueue/queue``); 0 when
    the Grid does not say (an older Grid or another remote end: then only the idle limit releases)."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/se/grid/newsessionqueue/queue", timeout=timeout) as r:
            value = json.loads(r.read().decode("utf-8")).get("value")
    except (OSError, ValueError, AttributeError):
        return 0
    return len(value) if isinstance(value, list) else 0


def release_due(held_s: float, idle_s: float, queued: int, between_units: bool,
                hold: float = GRID_HOLD_S, idle: float = GRID_IDLE_S) -> str:
    """Why a parked remote session must go back to the Grid now ("" to keep it). Pure: the caller measures.
    ``held_s``: since the session started; ``idle_s``: since its last case ended; ``queued``: the Grid's
    queue length; ``between_units``: the executor has no unit (or starts a new one)."""
    if idle_s >= idle:
        return f"idle {idle_s:.0f} s >= grid-idle {idle:g} s"
    if queued and (between_units or held_s >= hold):
        return f"{queued} request(s) in the Grid's queue" + ("" if between_units else f", held {held_s:.0f} s")
    return ""

