"""Headless Chromium for the report.html tests (Debian chromedriver given explicitly, no network but localhost)."""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("SE_OFFLINE", "true")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402


@contextmanager
def chrome() -> Iterator[WebDriver]:
    """Headless Chromium (the Debian chromedriver), 1280x800, every host but localhost unresolvable."""
    profile = tempfile.mkdtemp(prefix="writers-chrome-")
    opts = Options()
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}", "--window-size=1280,800",
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1"):
        opts.add_argument(arg)
    drv = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    try:
        yield drv
    finally:
        drv.quit()
        shutil.rmtree(profile, ignore_errors=True)


def open_report(driver: WebDriver, path: Path) -> None:
    """Load the page and wait until its list is rendered and its details blocks are inflated."""
    driver.get(path.as_uri())
    deadline = time.monotonic() + 10
    # data-details: every (compressed) details block inflated, so opening a case renders at once
    while driver.execute_script("return document.body.getAttribute('data-ready') + document.body.getAttribute("
                                "'data-details')") != "11":
        assert time.monotonic() < deadline, "report never rendered"
        time.sleep(0.02)
