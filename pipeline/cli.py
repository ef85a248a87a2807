"""``liuma-pipeline``: run | start | stop | status (``bin/liuma-pipeline`` is a shim calling ``main``),
plus ``keys`` (CURVE keys for the tcp transport) and ``encrypt-secret`` (``enc:…`` values for config.ini).

Exit codes of ``run``: 0 all passed, 1 a case failed or errored (or the run could not finish), 2 bad
usage/config/suite (the message names the file and field), 130 interrupted.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .config import Config, load_config
from .errors import ConfigError, PipelineError, SuiteError, TransportError
from .topology import RunSpec

__all__ = ["main"]

def _executors(cfg: Config, kinds_needed: set[str]) -> list[dict[str, Any]]:
    api, browsers = int(cfg.get("Pipeline", "api-workers")), int(cfg.get("Pipeline", "browsers"))
    out = [{"name": f"executor-{i + 1}", "kinds": ["API"]} for i in range(api)]
    out += [{"name": f"executor-{api + i + 1}", "kinds": ["API", "WEB"]} for i in range(browsers)]
    out += [{"name": f"executor-{api + browsers + i + 1}", "kinds": ["APP"], "device": d} for i, d in enumerate(sorted(cfg.devices))]
    have = {k for e in out for k in e["kinds"]}
    missing = kinds_needed - have
    if missing:
        hint = {"WEB": "--browsers N (or [Pipeline] browsers)", "APP": "a [Device:<name>] section", "API": "--api-workers N"}
        raise ConfigError(f"the suite has {', '.join(sorted(missing))} cases but no executor can run them: set "
                          + "; ".join(hint[m] for m in sorted(missing)), file=cfg.path, section="Pipeline")
    return out


def _check_devices(cfg: Config) -> None:
    """``[Device:<name>]`` sections are validated with the APP registry's own parser (unknown keys, bad
    URLs or ports, ports or udids used twice) before any stage starts; the error names file, section, key."""
    if not cfg.devices:
        return
    from stages.executor.app.devices import SECTION_PREFIX, parse_devices
    try:
        parse_devices({f"{SECTION_PREFIX}{name}": values for name, values in cfg.devices.items()})
    except ConfigError as e:
        where = ":".join(p for p in (f"[{e.section}]" if e.section else "", e.key) if p)
        message = str(e)[len(where) + 2:] if where and str(e).startswith(where + ": ") else str(e)
        raise ConfigError(message, file=cfg.path, section=e.section, key=e.key) from None


def _config(args: argparse.Namespace) -> Config:
    cfg = load_config(args.config)
    _check_devices(cfg)
    over = {}
    for opt, key in (("api_workers", "api-workers"), ("browsers", "browsers"), ("case_timeout", "case-timeout")):
        v = getattr(args, opt, None)
        if v is not None:
            over[key] = v
    if getattr(args, "report_dir", None):
        over["report-dir"] = args.report_dir
    return cfg.with_overrides("Pipeline", **over) if over else cfg


def _abs(p: str) -> str:
    return str(Path(p).expanduser().resolve())


def cmd_run(args: argparse.Namespace) -> int:
    from .suite import load_suite, read_case, case_path
    cfg = _config(args)
    storage = Path(_abs(cfg.get("Pipeline", "storage-root")))
    report_dir = _abs(cfg.get("Pipeline", "report-dir"))
    task, data_dir = load_suite(args.suite, storage / "data")
    kinds = {r.caseType for c in task.collections() for r in c.cases()}
    if "WEB" not in kinds and int(cfg.get("Pipeline", "api-workers")) > 0 and int(cfg.get("Pipeline", "browsers")) > 0:
        cfg = cfg.with_overrides("Pipeline", browsers=0)     # no browser to start (and warm) for an API-only suite
    executors = _executors(cfg, kinds)
    names = {}
    for c in task.collections():
        for r in c.cases():
            names[r.caseId] = str(read_case(case_path(data_dir, c.collectionId, r.caseId)).get("caseName") or r.caseId)
    run_dir = Path(tempfile.mkdtemp(prefix="lmp-", dir=cfg.get("Pipeline", "run-dir") or None))
    prepared = run_dir / "local-task.json"
    prepared.write_text(json.dumps({"task": task.to_dict(), "data_dir": str(data_dir), "report_dir": report_dir,
                                    "name": Path(args.suite).name, "case_names": names}, ensure_ascii=False))
    spec = RunSpec(str(run_dir), "run", cfg.values, cfg.headers, cfg.devices, cfg.path, str(prepared),
                   list(args.tags or []), report_dir, str(storage), executors)
    spec.save()
    from .supervisor import Supervisor
    _supervisor_logging(cfg, storage)
    from .progress import make_writer
    printer = make_writer(args.progress, sys.stdout, len(names))
    sup = Supervisor(spec, on_case=printer.case, on_task=printer.task, on_tick=printer.tick)
    print(f"liuma-pipeline: task {task.taskId}: {len(names)} case(s), {len(executors)} executor(s); logs in {storage / 'log'}", flush=True)
    try:
        sup.run()
    finally:
        printer.close()
        shutil.rmtree(run_dir, ignore_errors=True)
    if sup.fatal:
        print(f"liuma-pipeline: run aborted: {sup.fatal}", file=sys.stderr)
        return 1
    if sup._signal:
        return 130
    if not sup.reported:
        print("liuma-pipeline: the run ended without a report", file=sys.stderr)
        return 1
    t = sup.reported[-1]["totals"]
    return 0 if t["failed"] == 0 and t["error"] == 0 and not sup.reported[-1].get("missing") else 1


def _supervisor_logging(cfg: Config, storage: Path) -> None:
    from .log import setup_logging
    setup_logging(storage / "log", "supervisor", level=cfg.get("Logging", "level"), file_size_mb=cfg.get("Logging", "file-size"),
                  backups=cfg.get("Logging", "backup-count"), secrets=[cfg.get("Engine", "engine-secret"), cfg.headers.get("token", "")],
                  console=True)


def _engine_dir(cfg: Config) -> Path:
    return Path(_abs(cfg.get("Pipeline", "run-dir") or str(Path(cfg.get("Pipeline", "storage-root")) / "run")))


def cmd_start(args: argparse.Namespace) -> int:
    cfg = _config(args)
    run_dir = _engine_dir(cfg)
    pid_file = run_dir / "engine.pid"
    if pid_file.exists():
        try:
            os.kill(int(pid_file.read_text()), 0)
            print(f"liuma-pipeline: already running (pid {pid_file.read_text().strip()})", file=sys.stderr)
            return 2
        except (ProcessLookupError, ValueError):
            pass
    kinds = {"API"} | ({"WEB"} if int(cfg.get("Pipeline", "browsers")) else set())
    executors = _executors(cfg, kinds)
    if not args.foreground:
        if os.fork() > 0:
            time.sleep(0.5)
            print(f"liuma-pipeline: started; `liuma-pipeline status` shows the stages (run dir {run_dir})")
            return 0
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
    run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    pid_file.write_text(str(os.getpid()))
    storage = _abs(cfg.get("Pipeline", "storage-root"))
    spec = RunSpec(str(run_dir), "start", cfg.values, cfg.headers, cfg.devices, cfg.path, None, [],
                   _abs(cfg.get("Pipeline", "report-dir")), storage, executors)
    spec.save()
    from .supervisor import Supervisor
    _supervisor_logging(cfg, Path(storage))
    sup = Supervisor(spec)
    try:
        sup.run()
    finally:
        pid_file.unlink(missing_ok=True)
    return 1 if sup.fatal else 0


def _request(args: argparse.Namespace, req: dict[str, Any]) -> dict[str, Any]:
    from .transport import control_request
    cfg = _config(args)
    return control_request(f"ipc://{_engine_dir(cfg) / 'control.sock'}", req)


def cmd_status(args: argparse.Namespace) -> int:
    st = _request(args, {"cmd": "status"})
    if args.json:
        print(json.dumps(st, indent=1, default=str))
        return 0
    print(f"engine {st['mode']} up {st['uptime_s']} s{' (shutting down)' if st['shutting_down'] else ''}")
    print(f"{'STAGE':<12} {'KIND':<10} {'PID':>7} {'STATE':<9} {'UPTIME':>8} {'RESTARTS':>8}  CURRENT / LAST EXIT")
    for s in st["stages"]:
        cur = s.get("current") or {}
        what = f"{cur.get('case')} step {cur.get('step')!r} {cur.get('elapsed_s', 0):.0f}/{cur.get('deadline_s')} s" if cur else (s.get("last_exit") or "")
        print(f"{s['name']:<12} {s['kind']:<10} {s['pid'] or '-':>7} {s['state']:<9} {s['uptime_s']:>8} {s['restarts']:>8}  {what}")
    print(f"{'EXECUTOR':<12} {'RUNS':<10} ON")
    for s in (x for x in st["stages"] if x["kind"] == "executor"):
        on = s.get("browser") or (f"device {s['device']}" if s.get("device") else "-")
        print(f"{s['name']:<12} {','.join(s.get('kinds') or []):<10} {on}{' (retiring: stops when idle)' if s.get('retiring') else ''}")
    q = st.get("queues") or {}
    print(f"queued units: {q.get('queued_units', 0)}  tasks in flight: {q.get('tasks', 0)}")
    for t in st.get("tasks") or []:
        print(f"  task {t['task_id']} {t.get('name') or ''}: {t.get('results', 0)}/{t.get('cases') or '?'} results"
              + (" (finishing)" if t.get("finishing") else ""))
    if q.get("devices"):
        print(f"{'DEVICE':<14} {'EXECUTOR':<12} {'STATE':<12} {'NEXT PROBE':<11} LAST ERROR")
    for dev, d in sorted((q.get("devices") or {}).items()):
        nxt = f"in {d['next_probe_in_s']:.0f} s" if d.get("next_probe_in_s") is not None else "-"
        when = time.strftime("%H:%M:%S ", time.localtime(d["last_error_at"])) if d.get("last_error_at") else ""
        print(f"{dev:<14} {d.get('executor') or '-':<12} {d.get('state'):<12} {nxt:<11} {when}{d.get('last_error') or '-'}")
    for name, h in sorted((q.get("quarantined") or {}).items()):
        probe = "probe running" if h.get("probe_in_s") is None else f"probe in {h['probe_in_s']:.0f} s"
        since = time.strftime("%H:%M:%S", time.localtime(h.get("since") or 0))
        print(f"QUARANTINED {name} device {h.get('device')} since {since} ({probe}): {h.get('reason')}")
    return 0


def cmd_reload(args: argparse.Namespace) -> int:
    """Ask the engine to re-read its config file (like SIGHUP); an invalid file is refused, the old one stays."""
    try:
        st = _request(args, {"cmd": "reload"})
    except ConfigError as e:                    # unreadable here too: the engine would refuse it the same way
        print(f"liuma-pipeline: config not reloaded, the old one stays: {e}", file=sys.stderr)
        return 2
    if st.get("status") != "ok":
        print(f"liuma-pipeline: {st.get('reason')}", file=sys.stderr)
        return 2
    print(f"liuma-pipeline: config reloaded (generation {st['generation']}): changed {', '.join(st['changed']) or 'nothing'}"
          + (f"; executors started {', '.join(st['started'])}" if st["started"] else "")
          + (f"; retiring {', '.join(st['retiring'])} when idle" if st["retiring"] else "")
          + (f"; needs a restart: {', '.join(st['needs_restart'])}" if st["needs_restart"] else ""))
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    st = _request(args, {"cmd": "stop"})
    print(f"liuma-pipeline: {st.get('reason') or st.get('status')}")
    return 0 if st.get("status") == "ok" else 1


def cmd_keys(args: argparse.Namespace) -> int:
    """CURVE keys for ``transport = tcp``: server and client keypairs (0600); existing keys are kept."""
    from .curve import CLIENT, generate_keys
    directory = Path(args.dir).expanduser().resolve()
    generate_keys(directory, (CLIENT,))
    print(f"liuma-pipeline: CURVE keys in {directory} (server.*, {CLIENT}.*); set [Pipeline] transport = tcp and "
          f"curve-keys = {directory}")
    return 0


def cmd_encrypt_secret(args: argparse.Namespace) -> int:
    """Print ``enc:…`` for VALUE (for ``[Engine] engine-secret``); creates the key file if there is none."""
    from .secrets import ENV_VAR, encrypt, generate_key_file, load_key
    key_file = Path(args.key_file).expanduser()
    if not os.environ.get(ENV_VAR) and not key_file.exists():
        generate_key_file(key_file)
        print(f"liuma-pipeline: created key file {key_file} (0600); keep it next to config.ini or set {ENV_VAR}",
              file=sys.stderr)
    print(encrypt(args.value, load_key(key_file)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="liuma-pipeline", description="LiuMa-compatible test-execution engine")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run one suite (a LiuMa package directory or .zip) and exit")
    r.add_argument("suite")
    r.add_argument("--config")
    r.add_argument("--report-dir")
    r.add_argument("--api-workers", type=int)
    r.add_argument("--browsers", type=int)
    r.add_argument("--case-timeout", type=float)
    r.add_argument("--tags", nargs="*", help="only cases carrying one of these tags")
    r.add_argument("--progress", choices=("auto", "bar", "plain"), default="auto",
                   help="bar: redrawn progress bar; plain: one line per case (CI); auto: bar on a terminal")
    r.set_defaults(func=cmd_run)
    s = sub.add_parser("start", help="start the long-running engine")
    s.add_argument("--config")
    s.add_argument("--foreground", action="store_true")
    s.set_defaults(func=cmd_start)
    k = sub.add_parser("keys", help="generate CURVE keys for the tcp transport")
    k.add_argument("--dir", default="config/curve", help="key directory (default config/curve)")
    k.set_defaults(func=cmd_keys)
    e = sub.add_parser("encrypt-secret", help="print enc:<…> for a value of [Engine] engine-secret")
    e.add_argument("--key-file", default="config/secret.key", help="Fernet key file (created 0600 if missing)")
    e.add_argument("value")
    e.set_defaults(func=cmd_encrypt_secret)
    for name, func in (("stop", cmd_stop), ("status", cmd_status), ("reload", cmd_reload)):
        p = sub.add_parser(name)
        p.add_argument("--config")
        if name == "status":
            p.add_argument("--json", action="store_true")
        p.set_defaults(func=func)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for opt in ("api_workers", "browsers", "case_timeout"):
        v = getattr(args, opt, None)
        if v is not None and v < 0:
            print(f"liuma-pipeline: --{opt.replace('_', '-')} must be >= 0", file=sys.stderr)
            return 2
    try:
        return int(args.func(args))
    except (ConfigError, SuiteError) as e:
        print(f"liuma-pipeline: {e}", file=sys.stderr)
        return 2
    except TransportError as e:
        print(f"liuma-pipeline: {e}", file=sys.stderr)
        return 1
    except PipelineError as e:
        print(f"liuma-pipeline: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
