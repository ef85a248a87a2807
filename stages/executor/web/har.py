"""DevTools ``Network.*`` events of one attempt -> an HTTP Archive 1.2 log (pure).

Field by field as the HAR 1.2 spec requires (http://www.softwareishard.com/blog/har-12-spec/), checked in the
tests against the har-schema JSON schemas that har-validator uses. Timings follow Chrome DevTools' own HAR
export: ``blocked``/``dns``/``connect``/``ssl`` are -1 when not applicable, ``send``/``wait``/``receive``
never negative, ``time`` their sum (``ssl`` is included in ``connect``). A request that failed (refused,
aborted, blocked) is still an entry: status 0 and the browser's reason in ``response._error``.

Credentials never reach the file: the values of ``CREDENTIAL_HEADERS`` are ``******`` (Chrome DevTools'
own HAR export leaves these headers out unless asked), and the recorder masks the run's secrets elsewhere.
"""
from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pipeline.secrets import MASK

__all__ = ["CREDENTIAL_HEADERS", "NetworkLog", "har_document"]

CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key",
                                "x-auth-token"})
NETWORK_EVENTS = ("Network.requestWillBeSent", "Network.responseReceived", "Network.loadingFinished",
                  "Network.loadingFailed")


class NetworkLog:
    """Collects the events (any thread appends; ``har`` reads a snapshot). Bounded: ``limit`` requests."""

    def __init__(self, limit: int = 5000) -> None:
        self.limit = limit
        self.requests: dict[str, dict[str, Any]] = {}
        self.done: list[dict[str, Any]] = []
        self.dropped = 0

    def event(self, method: str, p: dict[str, Any]) -> None:
        rid = str(p.get("requestId") or "")
        if method == "Network.requestWillBeSent":
            old = self.requests.pop(rid, None)
            if old is not None and p.get("redirectResponse"):       # the previous hop ends here
                old["response"] = p["redirectResponse"]
                old["end"] = p.get("timestamp")
                self._finish(old)
            if len(self.requests) + len(self.done) >= self.limit:
                self.dropped += 1
                return
            self.requests[rid] = {"request": p.get("request") or {}, "start": p.get("timestamp"),
                                  "wall": p.get("wallTime"), "type": p.get("type") or ""}
            return
        entry = self.requests.get(rid)
        if entry is None:
            return
        if method == "Network.responseReceived":
            entry["response"] = p.get("response") or {}
        elif method in ("Network.loadingFinished", "Network.loadingFailed"):
            entry["end"] = p.get("timestamp")
            entry["size"] = p.get("encodedDataLength")
            if method == "Network.loadingFailed":
                entry["error"] = str(p.get("errorText") or "failed") + (" (canceled)" if p.get("canceled") else "")
            self._finish(self.requests.pop(rid))

    def _finish(self, entry: dict[str, Any]) -> None:
        self.done.append(entry)

    def entries(self) -> list[dict[str, Any]]:
        """Finished requests, then those still pending when the attempt ended (no response end)."""
        return [har_entry(e) for e in self.done + list(self.requests.values())]


def har_document(entries: list[dict[str, Any]], creator_version: str, comment: str = "") -> dict[str, Any]:
    log: dict[str, Any] = {"version": "1.2", "creator": {"name": "liuma-pipeline", "version": creator_version},
                           "pages": [], "entries": sorted(entries, key=lambda e: e["startedDateTime"])}
    if comment:
        log["comment"] = comment
    return {"log": log}


def _iso(epoch_s: float | None) -> str:
    t = dt.datetime.fromtimestamp(float(epoch_s or 0), dt.UTC)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _headers(h: Any) -> list[dict[str, str]]:
    if not isinstance(h, dict):
        return []
    out = []
    for name, value in h.items():
        secret = str(name).lower() in CREDENTIAL_HEADERS
        for line in str(value).split("\n"):         # DevTools joins repeated headers with "\n"
            out.append({"name": str(name), "value": MASK if secret else line})
    return out


def _version(protocol: Any) -> str:
    p = str(protocol or "").lower()
    return {"http/1.0": "HTTP/1.0", "http/1.1": "HTTP/1.1", "h2": "HTTP/2", "h3": "HTTP/3"}.get(p, p.upper() or "HTTP/1.1")


def _timings(entry: dict[str, Any]) -> dict[str, float]:
    resp = entry.get("response") or {}
    t = resp.get("timing") if isinstance(resp.get("timing"), dict) else None
    start, end = entry.get("start"), entry.get("end")
    total = max(0.0, (float(end) - float(start)) * 1000) if start is not None and end is not None else 0.0
    if not t:
        return {"blocked": -1, "dns": -1, "connect": -1, "ssl": -1, "send": 0.0, "wait": round(total, 3), "receive": 0.0}

    def span(a: str, b: str) -> float:
        x, y = float(t.get(a, -1)), float(t.get(b, -1))
        return round(y - x, 3) if x >= 0 and y >= x else -1

    send_start, send_end, headers_end = float(t.get("sendStart", 0)), float(t.get("sendEnd", 0)), float(t.get("receiveHeadersEnd", 0))
    firsts = [float(t[k]) for k in ("dnsStart", "connectStart", "sendStart") if float(t.get(k, -1)) >= 0]
    queued = (float(t["requestTime"]) - float(start)) * 1000 if start is not None and "requestTime" in t else 0.0
    blocked = max(0.0, queued + (min(firsts) if firsts else 0.0))
    receive = 0.0
    if end is not None and "requestTime" in t:
        receive = max(0.0, (float(end) - float(t["requestTime"])) * 1000 - headers_end)
    return {"blocked": round(blocked, 3), "dns": span("dnsStart", "dnsEnd"), "connect": span("connectStart", "connectEnd"),
            "ssl": span("sslStart", "sslEnd"), "send": round(max(0.0, send_end - send_start), 3),
            "wait": round(max(0.0, headers_end - send_end), 3), "receive": round(receive, 3)}


def har_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """One HAR ``entries[]`` item from a collected request (see ``NetworkLog``)."""
    req, resp = entry.get("request") or {}, entry.get("response") or {}
    url = str(req.get("url") or "")
    timings = _timings(entry)
    post = req.get("postData")
    request: dict[str, Any] = {
        "method": str(req.get("method") or "GET"), "url": url, "httpVersion": _version(resp.get("protocol")),
        "cookies": [], "headers": _headers(req.get("headers")),
        "queryString": [{"name": k, "value": v} for k, v in parse_qsl(urlsplit(url).query, keep_blank_values=True)],
        "headersSize": -1, "bodySize": len(str(post).encode("utf-8")) if post else 0}
    if post:
        ctype = next((v for k, v in (req.get("headers") or {}).items() if k.lower() == "content-type"), "")
        request["postData"] = {"mimeType": str(ctype), "text": str(post)}
    headers = resp.get("headers") or {}
    size = entry.get("size")
    response: dict[str, Any] = {
        "status": int(resp.get("status") or 0), "statusText": str(resp.get("statusText") or ""),
        "httpVersion": _version(resp.get("protocol")), "cookies": [], "headers": _headers(headers),
        "content": {"size": int(resp.get("encodedDataLength") or size or 0), "mimeType": str(resp.get("mimeType") or "x-unknown")},
        "redirectURL": str(next((v for k, v in headers.items() if k.lower() == "location"), "")) if isinstance(headers, dict) else "",
        "headersSize": -1, "bodySize": int(size) if isinstance(size, (int, float)) and size >= 0 else -1}
    if entry.get("error"):
        response["_error"] = entry["error"]
    elif entry.get("end") is None:
        response["_error"] = "not finished when the attempt ended"
    out: dict[str, Any] = {
        "startedDateTime": _iso(entry.get("wall")), "time": round(sum(v for k, v in timings.items() if k != "ssl" and v > 0), 3),
        "request": request, "response": response, "cache": {}, "timings": timings, "_resourceType": entry.get("type") or ""}
    if resp.get("remoteIPAddress"):
        out["serverIPAddress"] = str(resp["remoteIPAddress"])
    return out
