"""The WEB evidence bundle in real headless Chromium: what a failing attempt keeps (console, HAR 1.2 network
log, DOM of every frame, chromedriver log, a video Chromium plays), what each keep mode keeps, the size
bound, and that a broken recorder never changes a case's result."""
from __future__ import annotations

import functools
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import (
    BaseHTTPRequestHandler,
    SimpleHTTPRequestHandler,
    ThreadingHTTPServer,
)
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from referencing import Registry, Resource

from pipeline.models import CaseResult
from stages.executor.common.evidence import EvidenceSpec
from stages.executor.context import RunSettings
from stages.executor.web import video
from stages.executor.web.cdp import CdpError, browser_ws_url
from stages.executor.web.har import har_entry
from tests.stages.executor.web.conftest import Web, logs, op
from tests.stages.executor.web.test_runner import remote_driver  # noqa: F401  (a chromedriver as remote end)

pytestmark = pytest.mark.browser
HAR_SCHEMA = Path(__file__).resolve().parents[4] / "tools" / "har" / "node_modules" / "har-schema" / "lib"   # npm, ./dev
MARK = "evidence-marker-7f3a"
# a known page: console lines of every level, an exception, a synchronous request with a known status
NOISE = ("console.log('info " + MARK + "'); console.warn('warn " + MARK + "'); console.error('error " + MARK + "');"
         "setTimeout(function(){ throw new Error('thrown " + MARK + "'); }, 0);"
         "var x = new XMLHttpRequest(); x.open('GET', '/api/status/418?tag=" + MARK + "', false); x.send();")


def run(w: Web, tmp: Path, keep: str, *ops: dict[str, Any], attempt: int = 1, max_mb: float = 25.0,
        video: bool = True, secrets: tuple[str, ...] = ()) -> tuple[CaseResult, dict[str, Any]]:
    w.ctx.evidence = EvidenceSpec(keep=keep, max_mb=max_mb, task_report_dir=tmp / "reports" / "task-web",
                                  collection_id="col-1", case_id="case-1", index=1, attempt=attempt, video=video,
                                  secrets=secrets)
    w.ctx.evidence_result = {}
    return w.run(*ops), w.ctx.evidence_result


def failing(w: Web) -> list[dict[str, Any]]:
    return [w.open(), op("browser", "执行脚本", script=NOISE), op("page", "单击", {"element": ("ID", "page2-link")}),
            w.open("/frame.html"), op("assertion", "断言页面标题", assertion="equals", expect="not the title")]


@pytest.fixture()
def w(demo_url: str, tmp_path: Path) -> Iterator[Web]:
    web = Web(demo_url, tmp_path)
    yield web
    web.close()


@pytest.fixture(scope="module")
def har_validator() -> jsonschema.protocols.Validator:
    resources = []
    for f in HAR_SCHEMA.glob("*.json"):
        schema = json.loads(f.read_text())
        resources.append((schema["$id"].rstrip("#"), Resource.from_contents(schema)))
    registry = Registry().with_resources(resources)
    har = json.loads((HAR_SCHEMA / "har.json").read_text())
    cls = jsonschema.validators.validator_for(har)
    return cls(har, registry=registry, format_checker=cls.FORMAT_CHECKER)


def bundle(tmp: Path, ev: dict[str, Any]) -> Path:
    return tmp / "reports" / "task-web" / str(ev["dir"])


def test_failing_attempt_keeps_every_part(w: Web, tmp_path: Path, har_validator: Any) -> None:
    r, ev = run(w, tmp_path, "failure", *failing(w))
    assert r.status == 1, logs(r)
    assert ev["dir"] == "attachments/case-1@col-1.1/1" and ev["notes"] == [], ev
    d = bundle(tmp_path, ev)
    kinds = {f["kind"]: f for f in ev["files"]}
    assert set(kinds) == {"console", "har", "dom", "dom-index", "driver-log", "video"}
    assert all((d / f["name"]).stat().st_size == f["bytes"] > 0 for f in ev["files"])

    console = json.loads((d / "console.json").read_text())
    mine = {row["level"]: row for row in console if MARK in row["text"]}
    assert {"info", "warning", "error"} <= set(mine) and all(row["time"] > 1e12 for row in mine.values())
    assert any(row["origin"] == "exception" and "thrown " + MARK in row["text"] for row in console)

    har = json.loads((d / "network.har").read_text())
    har_validator.validate(har)                                   # HAR 1.2 as har-validator checks it
    assert har["log"]["version"] == "1.2"
    by_url = {e["request"]["url"].split("127.0.0.1", 1)[1].split("/", 1)[1]: e for e in har["log"]["entries"]}
    teapot = by_url[f"api/status/418?tag={MARK}"]
    assert teapot["response"]["status"] == 418 and teapot["request"]["queryString"] == [{"name": "tag", "value": MARK}]
    assert by_url["page2.html"]["response"]["status"] == 200 and by_url["index.html"]["timings"]["wait"] >= 0

    index = json.loads((d / "dom.json").read_text())
    assert [i["url"].rsplit("/", 1)[1] for i in index] == ["frame.html", "inner.html"]   # the page and its iframe
    assert "<iframe" in (d / index[0]["file"]).read_text() and "</html>" in (d / index[1]["file"]).read_text()
    driver_log = (d / "chromedriver.log").read_text(errors="replace")
    assert "COMMAND Navigate" in driver_log and "frame.html" in driver_log


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_video_plays_in_chromium_and_frames_change(w: Web, tmp_path: Path) -> None:
    # each page stays on screen for a second: at 3 frames a second a page shown for a few milliseconds may
    # fall between two frames, and this checks that the video shows the first page and ends on the last
    shown = op("browser", "强制等待", second=("Int", "1"))
    _, ev = run(w, tmp_path, "failure", w.open(), shown, *failing(w)[1:4], shown, failing(w)[4])
    root = tmp_path / "reports" / "task-web"
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        w.run(op("browser", "打开网页", domain=base, path="/"))         # same origin: the canvas stays readable
        driver = w.driver
        driver.set_script_timeout(20)
        meta = driver.execute_async_script("""
            const done = arguments[arguments.length - 1];
            const v = document.createElement('video'); v.muted = true; v.src = arguments[0];
            v.onerror = () => done({error: String(v.error && v.error.code)});
            v.onloadeddata = () => done({duration: v.duration, w: v.videoWidth, h: v.videoHeight});
            document.body.appendChild(v); window.v = v;""", f"{base}/{ev['dir']}/video.webm")
        assert "error" not in meta and meta["duration"] > 0 and meta["w"] > 0, meta
        # no seeking (http.server serves no Range requests): the first frame now, the last when playback ended
        frame = """
            const done = arguments[arguments.length - 1], play = arguments[0];
            const grab = () => { const c = document.createElement('canvas'); c.width = v.videoWidth; c.height = v.videoHeight;
                const g = c.getContext('2d'); g.drawImage(v, 0, 0); const px = g.getImageData(0, 0, c.width, c.height).data;
                let diff = 0, ink = 0; const prev = window.prev;
                for (let i = 0; i < px.length; i += 4) {
                    if (px[i] < 128) ink++;
                    if (prev && Math.abs(px[i] - prev[i]) + Math.abs(px[i + 1] - prev[i + 1]) > 60) diff++; }
                window.prev = px; done([ink, diff, v.currentTime]); };
            if (play) { v.onended = grab; v.play(); } else { grab(); }"""
        first = driver.execute_async_script(frame, False)
        last = driver.execute_async_script(frame, True)
        assert first[0] > 0 and last[0] > 0, (first, last)       # something was drawn (text), not a blank canvas
        assert last[2] > 0.5 * meta["duration"], (first, last)    # it played to the end
        assert last[1] > 500, (first, last)       # pixels changed: the index page first, the frame page last
    finally:
        server.shutdown()
        server.server_close()


SECRET = "s3cr3t-Engine-Value-91"
# the secret in a console line, the DOM, a query string and a bearer header; a login whose answer sets a cookie
LEAKY = ("console.log('pw " + SECRET + "'); document.body.insertAdjacentHTML('beforeend', '<p id=leak>" + SECRET + "</p>');"
         "var a = new XMLHttpRequest(); a.open('POST', '/api/login', false); a.setRequestHeader('Content-Type', 'application/json');"
         "a.send(JSON.stringify({username: 'admin', password: 'x'}));"
         "var b = new XMLHttpRequest(); b.open('GET', '/api/users/1', false);"
         "b.setRequestHeader('Authorization', 'Bearer " + SECRET + "'); b.send();"
         "var c = new XMLHttpRequest(); c.open('GET', '/api/echo?key=" + SECRET + "', false); c.send();")


def test_secrets_and_credentials_are_masked_in_every_part(w: Web, tmp_path: Path, har_validator: Any) -> None:
    r, ev = run(w, tmp_path, "failure", w.open(), op("browser", "执行脚本", script=LEAKY),
                op("assertion", "断言页面标题", assertion="equals", expect="not the title"), secrets=(SECRET,))
    assert r.status == 1, logs(r)
    d = bundle(tmp_path, ev)
    assert {"console", "har", "dom", "driver-log", "video"} <= {f["kind"] for f in ev["files"]}
    for f in d.iterdir():                        # no part holds the secret (the driver log saw the script too)
        assert SECRET.encode() not in f.read_bytes(), f.name
    assert SECRET not in json.dumps(ev)          # nor the rows carried on the result for report.html
    console = json.loads((d / "console.json").read_text())
    assert any(row["text"] == "pw ******" for row in console), console
    assert '<p id="leak">******</p>' in (d / "dom-0.html").read_text()
    har = json.loads((d / "network.har").read_text())
    har_validator.validate(har)                  # masked value by value: still a valid HAR
    by_path = {e["request"]["url"].split("/api/", 1)[-1]: e for e in har["log"]["entries"] if "/api/" in e["request"]["url"]}
    assert set(by_path) == {"login", "users/1", "echo?key=******"}, set(by_path)
    auth = [h["value"] for h in by_path["users/1"]["request"]["headers"] if h["name"].lower() == "authorization"]
    assert auth == ["******"] and by_path["users/1"]["response"]["status"] == 200     # let in by the login's cookie
    assert by_path["echo?key=******"]["request"]["queryString"] == [{"name": "key", "value": "******"}]


def test_credential_headers_are_masked_whatever_their_case() -> None:
    # Chromium reports cookies in Network.*ExtraInfo events, which the recorder does not read; a browser that
    # puts them in the main events still gets them masked
    entry = har_entry({"request": {"url": "http://127.0.0.1/x", "method": "GET",
                                   "headers": {"Cookie": "sid=abc", "X-Trace": "t1", "authorization": "Basic eDp5"}},
                       "response": {"status": 200, "headers": {"Set-Cookie": "sid=abc; Path=/\nlang=en"}}})
    assert {h["name"]: h["value"] for h in entry["request"]["headers"]} == \
        {"Cookie": "******", "X-Trace": "t1", "authorization": "******"}
    assert entry["response"]["headers"] == [{"name": "Set-Cookie", "value": "******"}] * 2


def test_passing_attempt_keeps_nothing_under_failure(w: Web, tmp_path: Path) -> None:
    r, ev = run(w, tmp_path, "failure", w.open(), op("browser", "执行脚本", script=NOISE))
    assert r.status == 0 and ev == {} and r.evidence == {}
    assert not (tmp_path / "reports" / "task-web" / "attachments" / "case-1@col-1.1" / "1").exists()


def test_first_retry_keeps_the_retry_only(w: Web, tmp_path: Path) -> None:
    r, ev = run(w, tmp_path, "first-retry", *failing(w), attempt=1)
    assert r.status == 1 and ev == {}
    r, ev = run(w, tmp_path, "first-retry", w.open(), attempt=2)          # kept although it passed
    assert r.status == 0 and ev["dir"].endswith("/2") and {"console", "har", "video", "driver-log"} <= {f["kind"] for f in ev["files"]}
    assert "dom" not in {f["kind"] for f in ev["files"]}                      # the DOM is taken at failure only
    attempts = sorted(p.name for p in (tmp_path / "reports" / "task-web" / "attachments" / "case-1@col-1.1").iterdir())
    assert attempts == ["2"]
    r, ev = run(w, tmp_path, "first-retry", *failing(w), attempt=3)
    assert ev == {}


def test_always_and_never(w: Web, tmp_path: Path) -> None:
    r, ev = run(w, tmp_path, "always", w.open())
    assert r.status == 0 and ev["files"]
    r, ev = run(w, tmp_path, "never", *failing(w), attempt=2)
    assert r.status == 1 and ev == {}


def test_video_off_keeps_the_rest(demo_url: str, tmp_path: Path) -> None:
    w = Web(demo_url, tmp_path)                    # a fresh browser: no screencast was ever started on it
    try:
        r, ev = run(w, tmp_path, "failure", *failing(w), video=False)
    finally:
        w.close()
    assert r.status == 1 and ev["notes"] == []
    assert {f["kind"] for f in ev["files"]} == {"console", "har", "dom", "dom-index", "driver-log"}


def test_size_bound_leaves_parts_out_with_a_note(w: Web, tmp_path: Path) -> None:
    r, ev = run(w, tmp_path, "failure", *failing(w), max_mb=0.004)
    assert r.status == 1
    names = [f["name"] for f in ev["files"]]
    assert "console.json" in names and "network.har" not in names          # small first; the ~20 KB HAR does not fit
    assert sum(f["bytes"] for f in ev["files"]) <= 0.004 * 2**20
    assert sum(p.stat().st_size for p in bundle(tmp_path, ev).iterdir()) <= 0.004 * 2**20
    assert any(n.startswith("network.har left out") and "max-mb = 0.004" in n for n in ev["notes"]), ev["notes"]


def test_recorder_failure_is_a_note_never_the_result(w: Web, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(video, "FFMPEG", "no-such-ffmpeg")
    r, ev = run(w, tmp_path, "failure", *failing(w))
    assert r.status == 1 and [t["status"] for t in r.transactionList][-1] == 1     # the assertion failure, as without
    assert "video.webm" not in [f["name"] for f in ev["files"]] and "console.json" in [f["name"] for f in ev["files"]]
    assert any("ffmpeg is not installed" in n for n in ev["notes"]), ev["notes"]


def test_remote_end_keeps_what_it_allows_and_says_what_not(demo_url: str, tmp_path: Path, remote_driver: str) -> None:  # noqa: F811
    w = Web(demo_url, tmp_path, RunSettings(webdriver={"options": "remote", "path": remote_driver}))
    try:
        r, ev = run(w, tmp_path, "failure", *failing(w))
    finally:
        w.close()
    assert r.status == 1
    kinds = {f["kind"] for f in ev["files"]}
    assert {"console", "har", "dom", "video"} <= kinds and "driver-log" not in kinds     # DevTools on this machine
    assert "chromedriver log not available through a remote WebDriver end" in ev["notes"]


def test_remote_end_elsewhere_without_se_cdp_is_refused_with_a_reason() -> None:
    caps = {"goog:chromeOptions": {"debuggerAddress": "localhost:9222"}}
    with pytest.raises(CdpError, match="offers no se:cdp"):
        browser_ws_url(caps, "http://grid.example:4444/wd/hub")
    assert browser_ws_url({"se:cdp": "ws://grid.example:4444/session/1/se/cdp"}, "http://grid.example:4444") \
        == "ws://grid.example:4444/session/1/se/cdp"


class _NoDevtoolsGrid(BaseHTTPRequestHandler):
    """A WebDriver end in front of a real chromedriver that, like a Grid without ``se:cdp``, hides the
    browser's DevTools address from the new session's capabilities."""

    upstream = ""

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        req = urllib.request.Request(self.upstream + self.path, data=body or None, method=self.command,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                status, data = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, data = e.code, e.read()
        if self.command == "POST" and self.path.rstrip("/") == "/session":
            doc = json.loads(data)
            caps = doc["value"]["capabilities"]
            caps.pop("se:cdp", None)
            caps.get("goog:chromeOptions", {}).pop("debuggerAddress", None)
            data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _forward

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_remote_end_without_devtools_keeps_the_dom_and_notes_the_rest(demo_url: str, tmp_path: Path,
                                                                       remote_driver: str) -> None:  # noqa: F811
    handler = type("Grid", (_NoDevtoolsGrid,), {"upstream": remote_driver})
    grid = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=grid.serve_forever, daemon=True).start()
    w = Web(demo_url, tmp_path, RunSettings(webdriver={"options": "remote", "path": f"http://127.0.0.1:{grid.server_port}"}))
    try:
        r, ev = run(w, tmp_path, "failure", *failing(w))
    finally:
        w.close()
        grid.shutdown()
    assert r.status == 1, logs(r)
    assert {f["kind"] for f in ev["files"]} == {"dom", "dom-index"}, ev          # the DOM through WebDriver only
    notes = "\n".join(ev["notes"])
    assert "console, network and video not recorded: CdpError: the WebDriver end reports no DevTools endpoint" in notes
    assert "DOM: only the current frame (no DevTools endpoint for the other frames)" in notes
    assert "chromedriver log not available through a remote WebDriver end" in notes
