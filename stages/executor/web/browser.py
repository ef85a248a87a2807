"""Chromium lifecycle for WEB cases: build options (§5.1), start locally or on a remote W3C WebDriver, quit.

A :class:`Browser` owns one WebDriver session and, for a local browser, the fresh ``--user-data-dir`` it
created; :meth:`Browser.quit` always deletes that directory, even when the session is already gone.
Failures to start are :class:`BrowserStartError` (a case error: bad ``driverSetting``, missing binary);
a session that dies under a running case is recognised by :func:`is_browser_lost` and becomes an
``InfrastructureError`` in the operations layer (the case is *broken*, not failed).
"""
from __future__ import annotations

import ast
import glob
import logging
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("SE_OFFLINE", "true")   # Selenium Manager never goes online (env.md §2.3)

import psutil
import urllib3.exceptions
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

from pipeline.chromium_litter import bound_sockets, default_roots
from pipeline.chromium_litter import sweep as litter_sweep
from pipeline.metrics import observe_local
from stages.executor.ui.driver import driver_lost, set_command_timeout
from stages.executor.web.overload import host_saturated, start_failure_is_infrastructure

__all__ = ["ENGINE_ARGS", "Browser", "BrowserConfig", "BrowserStartError", "is_browser_lost", "start_browser"]

log = logging.getLogger("stages.executor")

DEFAULT_DRIVER = "/usr/bin/chromedriver"
DEFAULT_BINARY = "/usr/bin/chromium"
# env.md §2.1/§2.2: --headless and --no-sandbox are required here (root, no display); the resolver rules stop
# Chromium's own DNS traffic while keeping 127.0.0.1 and localhost reachable.
ENGINE_ARGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1",
    # no back/forward cache: leaving a page for the reset's about:blank then costs ~half (bench/web.py), and a
    # reused browser can never restore the previous case's live page on 后退
    "--disable-features=BackForwardCache",
)
# Chromium puts its SingletonSocket at $TMPDIR/org.chromium.Chromium.XXXXXX/SingletonSocket and aborts
# ("Socket path too long") past the 107-byte sun_path limit; a deep run dir easily gets there.
_SOCKET_SUFFIX = len("/org.chromium.Chromium.XXXXXX/SingletonSocket")
SUN_PATH_MAX = 107
SCRATCH_PREFIX = "lmc-"
_LOST_MARKERS = ("invalid session id", "chrome not reachable", "session deleted", "disconnected:",
                 "no such session", "target crashed", "tab crashed", "page crash",
                 "unable to receive message from renderer")


class BrowserStartError(Exception):
    """The browser could not be started. ``infrastructure``: the host or the Grid failed it (the case is
    broken and retried, see ``overload``), else this configuration did (a case error)."""

    def __init__(self, message: str, infrastructure: bool = False) -> None:
        super().__init__(message)
        self.infrastructure = infrastructure


@dataclass(frozen=True, slots=True)
class BrowserConfig:
    """Engine settings (``[WebDriver]``: options/path/remote-url/binary/window-size) merged with a case's driverSetting."""

    mode: str = "headless"                    # headless | normal | remote
    driver_path: str = DEFAULT_DRIVER         # local chromedriver, or the remote URL when mode == "remote"
    binary: str = ""
    window_size: str = "1280,800"
    arguments: tuple[str, ...] = ()
    experimentals: tuple[tuple[str, Any], ...] = ()
    extensions: tuple[str, ...] = ()          # base64 crx
    extension_files: tuple[str, ...] = ()
    extra_resolver_hosts: tuple[str, ...] = field(default=())

    @classmethod
    def from_settings(cls, webdriver_settings: dict[str, Any], driver_setting: dict[str, Any] | None = None) -> BrowserConfig:
        """Merge the engine's ``[WebDriver]`` section with a (rendered) case ``driverSetting`` (§3.5)."""
        ws = webdriver_settings or {}
        ds = driver_setting or {}
        mode = str(ws.get("options") or "headless").strip().lower()
        if mode not in ("headless", "normal", "remote"):
            raise BrowserStartError(f"[WebDriver] options must be headless, normal or remote, not {mode!r}")
        path = str((mode == "remote" and ws.get("remote-url")) or ws.get("path") or ("" if mode == "remote" else DEFAULT_DRIVER))
        if mode == "remote" and not path.startswith(("http://", "https://")):
            raise BrowserStartError(f"[WebDriver] remote-url (or path) must be the remote WebDriver URL in remote mode, got {path!r}")
        return cls(
            mode=mode, driver_path=path,
            binary=str(ds.get("binary") or ws.get("binary") or ""),
            window_size=str(ws.get("window-size") or ws.get("window_size") or "1280,800"),
            arguments=tuple(str(a.get("value")) for a in _items(ds, "arguments") if a.get("value")),
            experimentals=tuple((str(e.get("name")), convert_experimental(e)) for e in _items(ds, "experimentals")
                                if e.get("name")),
            extensions=tuple(str(e.get("value")) for e in _items(ds, "extensions") if e.get("value")),
            extension_files=tuple(str(e.get("value")) for e in _items(ds, "files") if e.get("value")),
        )


def _items(ds: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = ds.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise BrowserStartError(f"driverSetting.{key} must be a list of objects, got {value!r}")
    return value


def convert_experimental(item: dict[str, Any]) -> Any:
    """An experimental option's value converted by its ``type`` as in §3.5 (literal_eval, never eval)."""
    kind, value = str(item.get("type") or "String"), item.get("value")
    if not isinstance(value, str):
        return value
    try:
        if kind in ("Int", "Float", "Number"):
            return float(value) if "." in value else int(value)
        if kind == "Boolean":
            return value.strip().lower() == "true"
        if kind in ("JSONObject", "JSONArray"):
            return ast.literal_eval(value.replace("true", "True").replace("false", "False").replace("null", "None"))
    except (ValueError, SyntaxError) as e:
        raise BrowserStartError(f"driverSetting experimental {item.get('name')!r}: {value!r} is not a {kind}") from e
    return value


@dataclass(slots=True)
class Browser:
    """One WebDriver session; ``profile_dir`` is ours to delete. ``started_in`` = seconds the start took."""

    driver: WebDriver
    config: BrowserConfig
    profile_dir: str | None = None
    started_in: float = 0.0
    initial_rect: dict[str, int] = field(default_factory=dict)    # restored when the browser is reset
    scratch_dir: str | None = None    # short TMPDIR given to chromedriver/Chromium when ours is too long
    budget: float = -1.0              # page-load/script timeout last set (WebCatalog.prepare skips equal ones)
    driver_log: str | None = None     # chromedriver --log-path (inside profile_dir), for the evidence bundle
    started_at: float = field(default_factory=time.monotonic)   # a Grid session is given back after a while
    cdp: Any = None                   # remote: the se:cdp connection its reset uses (``remote.remote_cdp``)
    history_base: int = 1             # remote without se:cdp: the first window's history length after a reset
    singleton_dir: str | None = None  # Chromium's $TMPDIR/org.chromium.Chromium.*/ (left when it is killed)
    sweeper: threading.Thread | None = None   # the litter sweep started by ``quit`` (tests join it)

    def pids(self) -> list[int]:
        """chromedriver's pid (local mode only), for memory measurement and reaping."""
        service = getattr(self.driver, "service", None)
        proc = getattr(service, "process", None)
        return [proc.pid] if proc is not None else []

    def quit(self) -> None:
        """End the session, then delete the profile; never raises (a dead browser is already gone)."""
        if self.cdp is not None:
            self.cdp.close()
            self.cdp = None
        try:
            self.driver.quit()
        except Exception:  # noqa: BLE001 - quitting a lost session must not mask the case's own result
            service = getattr(self.driver, "service", None)
            if service is not None:
                try:
                    service.stop()
                except Exception:  # noqa: BLE001, S110 - the driver is gone either way
                    pass
        finally:
            for path in (self.profile_dir, self.scratch_dir):
                if path:
                    shutil.rmtree(path, ignore_errors=True)
            if self.config.mode != "remote":
                self.sweeper = sweep_litter_soon(self.singleton_dir)


_sweep_lock = threading.Lock()
_last_sweep = [-1e9]
SWEEP_EVERY_S = 60.0


def sweep_litter_soon(own_dir: str | None) -> threading.Thread | None:
    """After a quit, off the case path. A Chromium that exits cleanly removes its singleton dir itself, so
    one still there means the browser was killed: it is removed once no socket is bound in it (one read of
    /proc/net/unix), and then, at most once a minute, what other killed browsers left (``chromium_litter``:
    ``/dev/shm`` segments, singleton and profile dirs older than a minute that no live process holds; the
    walk over /proc is the janitor's periodic job, so a clean quit never pays it)."""
    if not own_dir or not os.path.isdir(own_dir):
        return None

    def run() -> None:
        with _sweep_lock:                 # one walk at a time, however many browsers quit together
            try:
                if not any(s.startswith(own_dir.rstrip("/") + "/") for s in bound_sockets()):
                    shutil.rmtree(own_dir, ignore_errors=True)
                if time.monotonic() - _last_sweep[0] < SWEEP_EVERY_S:
                    return
                _last_sweep[0] = time.monotonic()
                removed = litter_sweep(default_roots(), min_age=60.0)
                if removed:
                    log.info("removed %d leftover(s) of killed browsers: %s", len(removed), ", ".join(removed[:5]))
            except Exception as e:  # noqa: BLE001 - housekeeping never takes a thread's exception into the run
                log.warning("sweeping browser leftovers failed: %s", e)
    t = threading.Thread(target=run, name="litter-sweep", daemon=True)
    t.start()
    return t


def build_options(config: BrowserConfig, profile_dir: str | None) -> Options:
    opts = Options()
    if config.mode == "normal":
        opts.add_experimental_option("excludeSwitches", ["enable-logging"])
    else:
        for arg in ENGINE_ARGS:
            opts.add_argument(arg)
    if profile_dir:
        opts.add_argument(f"--user-data-dir={profile_dir}")
    if not any(a.startswith("--window-size") for a in config.arguments):
        opts.add_argument(f"--window-size={config.window_size}")
    for arg in config.arguments:
        opts.add_argument(arg)
    for name, value in config.experimentals:
        opts.add_experimental_option(name, value)
    for ext in config.extensions:
        opts.add_encoded_extension(ext)
    for path in config.extension_files:
        opts.add_extension(path)
    if config.mode != "remote":
        opts.binary_location = config.binary or DEFAULT_BINARY
    elif config.binary:
        opts.binary_location = config.binary
    return opts


def start_browser(config: BrowserConfig, command_timeout: float = 60.0, driver_log: bool = False) -> Browser:
    """Start Chromium as configured; the WebDriver HTTP client never waits longer than ``command_timeout``.
    ``driver_log``: a local chromedriver writes its log into the profile dir (read by the evidence recorder)."""
    profile = None if config.mode == "remote" else tempfile.mkdtemp(prefix="liuma-chrome-")
    scratch = None if config.mode == "remote" else short_tmpdir()
    log_path = os.path.join(profile, "chromedriver.log") if profile and driver_log else None
    t0 = time.monotonic()
    try:
        opts = build_options(config, profile)
        if config.mode == "remote":
            driver: WebDriver = webdriver.Remote(command_executor=config.driver_path, options=opts)
        else:
            service = Service(config.driver_path, env=driver_env(scratch), log_output=log_path)
            driver = webdriver.Chrome(service=service, options=opts)
    except (WebDriverException, OSError, ValueError, urllib3.exceptions.HTTPError) as e:
        for path in (profile, scratch):
            if path:
                shutil.rmtree(path, ignore_errors=True)
        msg = (getattr(e, "msg", None) or str(e)).split("\nHost info:")[0].strip()   # a Grid appends build info
        transport = isinstance(e, (OSError, urllib3.exceptions.HTTPError)) and not isinstance(e, ValueError)
        infra = not isinstance(e, ValueError) and start_failure_is_infrastructure(
            config.mode, msg, transport, saturated=host_saturated())
        where = f"Selenium Grid / remote WebDriver {config.driver_path}" if config.mode == "remote" else f"driver {config.driver_path}"
        raise BrowserStartError(f"浏览器启动失败 ({config.mode}, {where}): {msg}", infrastructure=infra) from e
    set_command_timeout(driver, command_timeout)
    observe_local("browser_start_seconds", time.monotonic() - t0)     # liuma_browser_start_seconds
    browser = Browser(driver=driver, config=config, profile_dir=profile, started_in=time.monotonic() - t0,
                      scratch_dir=scratch, driver_log=log_path)
    try:
        browser.initial_rect = dict(driver.get_window_rect())
    except WebDriverException:
        pass
    if profile:
        try:        # Chromium links its profile's SingletonSocket into $TMPDIR/org.chromium.Chromium.XXXXXX/
            browser.singleton_dir = os.path.dirname(os.readlink(os.path.join(profile, "SingletonSocket")))
        except OSError:
            pass
    return browser


def short_tmpdir() -> str | None:
    """A private short TMPDIR under /tmp when ours would push Chromium's singleton socket past the limit."""
    if len(tempfile.gettempdir()) + _SOCKET_SUFFIX <= SUN_PATH_MAX:
        return None
    sweep_scratch()
    return tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-", dir="/tmp")


def sweep_scratch() -> None:
    """Delete scratch dirs left by executors that died (SIGKILL skips ``Browser.quit``): named by owner pid."""
    for path in glob.glob(f"/tmp/{SCRATCH_PREFIX}*-*"):
        owner = os.path.basename(path)[len(SCRATCH_PREFIX):].split("-", 1)[0]
        if owner.isdigit() and not psutil.pid_exists(int(owner)):
            shutil.rmtree(path, ignore_errors=True)


def driver_env(scratch: str | None) -> dict[str, str]:
    """chromedriver's (and so Chromium's) environment. ``LIUMA_TMPDIR`` keeps the executor's own temp dir
    visible, so a browser of a run can still be found by it when ``TMPDIR`` had to be shortened."""
    env = dict(os.environ, LIUMA_TMPDIR=tempfile.gettempdir())
    if scratch:
        env["TMPDIR"] = scratch
    return env


def is_browser_lost(exc: BaseException) -> bool:
    """True when ``exc`` means the session or chromedriver is gone (infrastructure), not a product failure."""
    return driver_lost(exc, _LOST_MARKERS)

