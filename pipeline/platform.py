"""HTTP client for the LiuMa platform's engine API (liuma-engine.md §2, §10), wire-compatible with 1.4.1.

What a caller may rely on:
- every call is ``POST`` with a JSON body carrying ``engineCode`` and ``timestamp`` (int seconds), headers
  from the ``[Header]`` section plus ``token``; explicit (connect, read) timeouts;
- the token is applied lazily (when none is known) and refreshed once on 2020/2030/2040; it lives in a
  ``TokenStore`` (memory, or a 0600 state file, optionally encrypted) — ``config.ini`` is never rewritten;
- ``token/apply`` answered as ``text/plain`` is still parsed as JSON (§10);
- failures raise ``PlatformUnavailable`` (network, timeout, 502/503/504: retry later) or
  ``PlatformRejected`` (an error envelope, HTTP 500, an error body instead of a file: retrying the same
  request is unlikely to help); both name the endpoint.
"""
from __future__ import annotations

import base64
import json
import logging
import os
import re
import shutil
import time
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn, Protocol

import requests

from pipeline.errors import ConfigError, PipelineError, SuiteError
from pipeline.package import is_zip_bytes, safe_extract
from pipeline.secrets import ENV_VAR, decrypt, encrypt, is_encrypted, load_key, redact

__all__ = ["PlatformClient", "PlatformError", "PlatformUnavailable", "PlatformRejected", "TokenStore",
           "MemoryTokenStore", "FileTokenStore", "shared_token_store", "secret_key", "engine_secret", "TOKEN_ERRORS",
           "SCREENSHOT_NAME"]

log = logging.getLogger(__name__)

TOKEN_ERRORS = frozenset({2020, 2030, 2040})
SCREENSHOT_NAME = re.compile(r"^\d{8}_[0-9A-Za-z-]+\.png$")   # the platform splits the name on "_" (§2.3)
_PNG_HEAD, _PNG_TAIL = b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"
_RETRY_HTTP = frozenset({502, 503, 504})


class PlatformError(PipelineError):
    """A platform call failed. ``endpoint`` is the path, ``status`` the envelope code (None if there was no
    envelope), ``http_status`` the HTTP code (None if no response)."""

    retryable = False

    def __init__(self, message: str, *, endpoint: str, status: int | None = None,
                 http_status: int | None = None) -> None:
        super().__init__(f"{endpoint}: {message}")
        self.endpoint, self.status, self.http_status = endpoint, status, http_status


class PlatformUnavailable(PlatformError):
    """Connection refused/reset, timeout, 502/503/504, or a file still being written: try again later."""

    retryable = True


class PlatformRejected(PlatformError):
    """The platform answered and said no (error envelope, HTTP 500, error body instead of a file)."""


class TokenStore(Protocol):
    def load(self) -> str | None: ...
    def save(self, token: str | None) -> None: ...


class MemoryTokenStore:
    def __init__(self, token: str | None = None) -> None:
        self._token = token

    def load(self) -> str | None:
        return self._token

    def save(self, token: str | None) -> None:
        self._token = token


class FileTokenStore:
    """Token in a private state file (0600, replaced atomically); encrypted when ``key`` is given, so
    stage processes share one token without touching ``config.ini`` (weakness 7 of §1.8)."""

    def __init__(self, path: Path, key: bytes | None = None) -> None:
        self.path, self.key = path, key

    def load(self) -> str | None:
        try:
            text = self.path.read_text("utf-8").strip()
        except OSError:
            return None
        return (decrypt(text, self.key) if self.key else text) or None

    def save(self, token: str | None) -> None:
        if token is None:
            self.path.unlink(missing_ok=True)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(encrypt(token, self.key) if self.key else token)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


def secret_key(config_path: str | Path = "") -> bytes | None:
    """The Fernet key for ``enc:`` values and the token file: ``$LIUMA_SECRET_KEY``, else ``secret.key`` next
    to the config file, else ``config/secret.key``; None when there is none (values are then stored plain)."""
    candidates = [Path(config_path).parent / "secret.key"] if config_path else []
    for path in candidates + [None]:
        if path is not None and not path.exists():
            continue
        try:
            return load_key(path)
        except ConfigError:
            if path is not None or os.environ.get(ENV_VAR):
                raise              # a key that exists but is unusable is an error, not "no key"
    return None


def redaction_secrets(secret: str, token: str, config_path: str | Path = "") -> list[str]:
    """What log redaction must mask: each value as written and, for an ``enc:`` one, its clear text (the
    clear text is what ends up in a URL or a message). A key that cannot decrypt leaves the written form only;
    the stage that needs the value reports that error itself."""
    out = [v for v in (secret, token) if v]
    for v in (secret, token):
        if v and is_encrypted(v):
            try:
                key = secret_key(config_path)
                if key is not None:
                    out.append(decrypt(v, key))
            except ConfigError:
                pass
    return out


def engine_secret(spec: Any) -> str:
    """``[Engine] engine-secret`` in clear (it may be written ``enc:…``); a missing key is a ``ConfigError``."""
    value = str(spec.setting("Engine", "engine-secret"))
    if not is_encrypted(value):
        return value
    key = secret_key(getattr(spec, "config_path", ""))
    if key is None:
        raise ConfigError(f"engine-secret is encrypted but no key was found (set {ENV_VAR} or put secret.key "
                          "next to the config file)", section="Engine", key="engine-secret")
    return decrypt(value, key)


def shared_token_store(storage_root: str | Path, key: bytes | None = None) -> FileTokenStore:
    """The token file every stage of one engine shares: ``<storage>/state/token`` (0600), always encrypted:
    with the configured secret key (see ``secret_key``), else with an engine-made ``state/token.key`` (0600),
    so a copied or backed-up state file alone never shows the token. A plain token file of an older
    engine still loads (``decrypt`` passes plain text through) and is encrypted on its next save."""
    state = Path(storage_root) / "state"
    return FileTokenStore(state / "token", key or _state_key(state / "token.key"))


def _state_key(path: Path) -> bytes:
    """Load ``path`` or create it; several stages may race to create it, so a half-written key is retried."""
    from pipeline.secrets import generate_key_file
    for _ in range(50):
        try:
            return generate_key_file(path)
        except ConfigError:
            pass                                  # it exists: another stage made it
        try:
            return load_key(path)
        except ConfigError:
            time.sleep(0.02)                      # created but not yet written
    return load_key(path)


class PlatformClient:
    """One engine's view of the platform. Light constructor; the HTTP session is created on first use."""

    def __init__(self, base_url: str, engine_code: str, engine_secret: str, *,
                 headers: Mapping[str, str] | None = None, timeout: float = 30.0,
                 connect_timeout: float = 5.0, token_store: TokenStore | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.engine_code = engine_code
        self._secret = decrypt(engine_secret)
        static = {k.lower(): v for k, v in (headers or {}).items()}
        initial = static.pop("token", "").strip()
        self._headers = static
        self._timeout = (connect_timeout, timeout)
        self._tokens = token_store or MemoryTokenStore()
        if initial and set(initial) != {"*"} and self._tokens.load() is None:
            self._tokens.save(initial)    # a real token from [Header]; the shipped "******" is ignored
        self._session: requests.Session | None = None

    @classmethod
    def from_config(cls, config: Any, token_store: TokenStore | None = None) -> PlatformClient:
        """From ``pipeline.config.Config``: [Platform] url/timeout, [Engine] code/secret, [Header]."""
        return cls(config.get("Platform", "url"), config.get("Engine", "engine-code"),
                   config.get("Engine", "engine-secret"), headers=config.headers,
                   timeout=config.get("Platform", "timeout"), token_store=token_store)

    @classmethod
    def from_spec(cls, spec: Any, token_store: TokenStore | None = None, *, max_timeout: float | None = None) -> PlatformClient:
        """From a stage's ``RunSpec``; by default with the engine's shared token file. ``max_timeout`` caps
        the per-call read timeout (a stage that calls on its loop thread must stay below the hang detector)."""
        store = token_store or shared_token_store(spec.storage_root, secret_key(getattr(spec, "config_path", "")))
        timeout = float(spec.setting("Platform", "timeout"))
        if max_timeout is not None:
            timeout = min(timeout, max_timeout)
        return cls(spec.setting("Platform", "url"), spec.setting("Engine", "engine-code"), engine_secret(spec),
                   headers=spec.headers, timeout=timeout, token_store=store)

    @property
    def secrets(self) -> list[str]:
        """Values to redact from logs."""
        return [s for s in (self._secret, self._tokens.load()) if s]

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    # -- protocol -------------------------------------------------------------------------------------------

    def apply_token(self) -> str:
        """``/openapi/engine/token/apply``; stores and returns the new token."""
        path = "/openapi/engine/token/apply"
        body = {"engineCode": self.engine_code, "engineSecret": self._secret, "timestamp": int(time.time())}
        resp = self._send("POST", path, json_body=body, token=None)
        env = self._envelope(path, resp)
        if env.get("status") != 0 or not isinstance(env.get("data"), str):
            self._raise_envelope(path, env, hint=" (wrong engine code or secret?)")
        token: str = env["data"]
        self._tokens.save(token)
        return token

    def fetch_task(self) -> dict[str, Any] | None:
        """``/openapi/engine/task/fetch``: the next task object (§3.1) or None."""
        data = self._call("/openapi/engine/task/fetch", {})
        if data is not None and not (isinstance(data, dict) and isinstance(data.get("taskId"), str)):
            raise PlatformRejected(f"task object without a taskId: {str(data)[:200]}",
                                   endpoint="/openapi/engine/task/fetch")
        return data

    def download_package(self, task: Mapping[str, Any], dest_dir: Path) -> Path:
        """Download the task zip and extract it safely; returns ``dest_dir/<taskId>`` which holds
        ``<collectionId>/<caseId>.json``. An error envelope is never treated as a zip."""
        task_id = str(task.get("taskId"))
        url = task.get("downloadUrl")
        if not isinstance(url, str) or not url:
            raise SuiteError("platform gave no downloadUrl (it failed to build the test data)",
                             file=f"task {task_id}", field="downloadUrl")
        data = self._get_bytes(url, f"task {task_id}")
        staging = dest_dir / f".{task_id}.partial"
        final = dest_dir / task_id
        shutil.rmtree(staging, ignore_errors=True)
        try:
            safe_extract(data, staging, label=f"package of task {task_id}")
            tops = [p.name for p in staging.iterdir()]
            if tops and tops != [task_id]:
                raise SuiteError(f"package holds {tops!r} instead of one folder named after the task",
                                 file=f"package of task {task_id}")
            shutil.rmtree(final, ignore_errors=True)
            if tops:
                os.replace(staging / task_id, final)
            else:
                final.mkdir(parents=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return final

    def download_test_file(self, file_id: str, cache_dir: Path) -> tuple[str, bytes]:
        """``/openapi/download/test/file/<id>`` → (file name, bytes), cached under ``cache_dir/<id>/``."""
        folder = cache_dir / file_id
        cached = [p for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []
        if len(cached) == 1:
            return cached[0].name, cached[0].read_bytes()
        path = f"/openapi/download/test/file/{urllib.parse.quote(file_id, safe='')}"
        resp = self._send("GET", path, json_body=None, token=self._tokens.load())  # no token needed (§2.2)
        name = _attachment_name(resp.headers.get("Content-Disposition", ""))
        if name is None:
            self._raise_not_a_file(path, resp, f"test file {file_id}")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(resp.content)
        return name, resp.content

    def upload_results(self, task_id: str, rows: list[dict[str, Any]]) -> None:
        """``/openapi/engine/result/upload``; rows must already be valid (§10: one bad row → HTTP 500)."""
        self._call("/openapi/engine/result/upload", {"taskId": task_id, "caseResultList": rows})

    def upload_screenshot(self, path: Path) -> None:
        """``/openapi/engine/screenshot/upload`` with the file's base64; the name must be ``date_uuid.png``."""
        endpoint = "/openapi/engine/screenshot/upload"
        if not SCREENSHOT_NAME.match(path.name):
            raise PlatformRejected(f"{path.name!r} is not named <YYYYMMDD>_<uuid>.png", endpoint=endpoint)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise PlatformRejected(f"cannot read {path}: {e.strerror}", endpoint=endpoint) from e
        if not data.startswith(_PNG_HEAD):
            raise PlatformRejected(f"{path} is not a PNG", endpoint=endpoint)
        if not data.endswith(_PNG_TAIL):    # still being written (§1.8 weakness 13)
            raise PlatformUnavailable(f"{path} is incomplete (no IEND chunk yet)", endpoint=endpoint)
        self._call(endpoint, {"fileName": path.name, "base64String": base64.b64encode(data).decode("ascii")})

    def complete_task(self, task_id: str) -> None:
        self._call("/openapi/engine/task/complete", {"taskId": task_id})

    # -- plumbing -------------------------------------------------------------------------------------------

    def _call(self, path: str, extra: dict[str, Any]) -> Any:
        """POST with the engine fields; one token refresh on 2020/2030/2040; returns ``data``."""
        for attempt in (1, 2):
            body = {"engineCode": self.engine_code, "timestamp": int(time.time()), **extra}
            env = self._envelope(path, self._request_with_token("POST", path, body))
            if env.get("status") in TOKEN_ERRORS and attempt == 1:
                log.info("%s: token refused (status %s); applying for a new one", path, env.get("status"))
                self._tokens.save(None)
                continue
            if env.get("status") != 0:
                self._raise_envelope(path, env)
            return env.get("data")
        raise AssertionError("unreachable")

    def _request_with_token(self, method: str, path: str, body: Any) -> requests.Response:
        token = self._tokens.load() or self.apply_token()
        return self._send(method, path, json_body=body, token=token)

    def _get_bytes(self, path: str, what: str) -> bytes:
        """GET a file that needs the token; a token-error envelope triggers one refresh."""
        for attempt in (1, 2):
            resp = self._request_with_token("GET", path, None)
            if is_zip_bytes(resp.content):
                return resp.content
            env = _maybe_envelope(resp)
            if env is not None and env.get("status") in TOKEN_ERRORS and attempt == 1:
                self._tokens.save(None)
                continue
            self._raise_not_a_file(path, resp, what)
        raise AssertionError("unreachable")

    def _send(self, method: str, path: str, *, json_body: Any, token: str | None) -> requests.Response:
        if self._session is None:
            self._session = requests.Session()
        headers = dict(self._headers)
        if token:
            headers["token"] = token
        if json_body is not None:
            headers.setdefault("content-type", "application/json;charset=utf-8")
        data = json.dumps(json_body, ensure_ascii=False).encode("utf-8") if json_body is not None else None
        try:
            resp = self._session.request(method, self.base_url + path, data=data, headers=headers,
                                         timeout=self._timeout)
        except requests.RequestException as e:
            raise PlatformUnavailable(redact(f"{type(e).__name__}: {e}", self.secrets), endpoint=path) from e
        if resp.status_code in _RETRY_HTTP:
            raise PlatformUnavailable(f"HTTP {resp.status_code}", endpoint=path, http_status=resp.status_code)
        if resp.status_code != 200:
            raise PlatformRejected(f"HTTP {resp.status_code}: {resp.text[:200]}", endpoint=path,
                                   http_status=resp.status_code)
        return resp

    def _envelope(self, path: str, resp: requests.Response) -> dict[str, Any]:
        env = _maybe_envelope(resp)
        if env is None:
            raise PlatformRejected(f"not a status envelope: {resp.text[:200]!r}", endpoint=path, http_status=200)
        return env

    @staticmethod
    def _raise_envelope(path: str, env: Mapping[str, Any], hint: str = "") -> None:
        detail = env.get("data") if isinstance(env.get("data"), str) else ""
        raise PlatformRejected(f"status {env.get('status')} {env.get('message', '')} {detail}".rstrip() + hint,
                               endpoint=path, status=env.get("status"))

    @staticmethod
    def _raise_not_a_file(path: str, resp: requests.Response, what: str) -> NoReturn:
        env = _maybe_envelope(resp)
        if env is not None:
            detail = env.get("data") if isinstance(env.get("data"), str) else ""
            raise PlatformRejected(f"{what}: platform answered status {env.get('status')} "
                                   f"{env.get('message', '')} {detail} instead of a file".replace("  ", " "),
                                   endpoint=path, status=env.get("status"))
        raise PlatformRejected(f"{what}: body is not the expected file "
                               f"({resp.headers.get('Content-Type')}, {len(resp.content)} bytes)", endpoint=path)


def _maybe_envelope(resp: requests.Response) -> dict[str, Any] | None:
    """The body as a status envelope whatever the Content-Type says (token/apply is text/plain, §10)."""
    try:
        env = json.loads(resp.content.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):   # absurd nesting is not an envelope either
        return None
    return env if isinstance(env, dict) and isinstance(env.get("status"), int) else None


def _attachment_name(disposition: str) -> str | None:
    """File name from ``Content-Disposition`` (plain, quoted, URL-encoded or RFC 5987), reduced to a safe
    base name; None when the header is missing (then the body is an error envelope)."""
    match = re.search(r"filename\*\s*=\s*(?:UTF-8|utf-8)''([^;]+)", disposition) or \
        re.search(r'filename\s*=\s*"([^"]*)"', disposition) or re.search(r"filename\s*=\s*([^;]+)", disposition)
    if not match:
        return None
    name = urllib.parse.unquote(match.group(1).strip())
    name = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    return name if name not in ("", ".", "..") else "file"
