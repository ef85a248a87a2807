"""``liuma-pipeline``: run | start | stop | status (``bin/liuma-pipeline`` is a shim calling ``main``),
plus ``keys`` (CURVE keys for the tcp transport) and ``encrypt-secret`` (``enc:…`` values for config.ini).

Exit codes: see ``EXIT_CODES`` (also printed by ``--help``).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __name__ == "__main__" and sys.argv[1:2] in (["run"], ["start"]):
    gc.disable()        # the start-up pause (see ``main``) from the first import on

from .config import Config, load_config
from .errors import ConfigError, PipelineError, SuiteError, TransportError
from .topology import RunSpec

__all__ = ["main"]

def _executors(cfg: Config, kinds_needed: set[str]) -> list[dict[str, Any]]:
    from .capacity_probe import browser_count
    api, browsers = int(cfg.get("Pipeline", "api-workers")), browser_count(cfg.values)   # auto: measured; grid: /status
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
    from .storage import apply_umask
    apply_umask(int(cfg.get("Pipeline", "umask")))        # inherited by every stage, browser and report
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
    from .suite import case_path, load_suite, read_case
    cfg = _config(args)
    storage = Path(_abs(cfg.get("Pipeline", "storage-root")))
    report_dir = _abs(cfg.get("Pipeline", "report-dir"))
    read: dict[str, str] = {}                  # the names load_suite read while validating (each file is read once)
    task, data_dir = load_suite(args.suite, storage / "data", read)
    kinds = {r.caseType for c in task.collections() for r in c.cases()}
    if "WEB" not in kinds and int(cfg.get("Pipeline", "api-workers")) > 0 and cfg.get("Pipeline", "browsers") != 0:
        cfg = cfg.with_overrides("Pipeline", browsers=0)     # no browser to start (and warm) for an API-only suite
    executors = _executors(cfg, kinds)
    names = {}
    for c in task.collections():
        for r in c.cases():
            names[r.caseId] = read[r.caseId] if r.caseId in read else \
                str(read_case(case_path(data_dir, c.collectionId, r.caseId)).get("caseName") or r.caseId)
    run_dir = Path(tempfile.mkdtemp(prefix="lmp-", dir=cfg.get("Pipeline", "run-dir") or None))
    prepared = run_dir / "local-task.json"
    prepared.write_text(json.dumps({"task": task.to_dict(), "data_dir": str(data_dir), "report_dir": report_dir,
                                    "name": Path(args.suite).name, "case_names": names}, ensure_ascii=False))
    spec = RunSpec(str(run_dir), "run", cfg.values, cfg.headers, cfg.devices, cfg.path, str(prepared),
                   list(args.tags or []), report_dir, str(storage), executors)
    spec.save()
    from .profiling import mark
    mark("suite loaded")
    from .supervisor import Supervisor
    _supervisor_logging(cfg, storage)
    from .console import Console
    from .progress import make_writer
    printer = Console(make_writer(args.progress, sys.stdout, len(names)))
    # a terminal hangup (SSH drop) does not stop the run: output goes to the log and the run finishes detached
    sup = Supervisor(spec, on_case=printer.case, on_task=printer.task, on_tick=printer.tick, on_hangup=_hangup_check(printer))
    printer.print(f"liuma-pipeline: task {task.taskId}: {len(names)} case(s), {len(executors)} executor(s); "
                  f"logs in {storage / 'log'}; pid {os.getpid()} (`liuma-pipeline status` shows it)")
    registered = _register_run(storage, run_dir, args.suite, task.taskId)
    try:
        sup.run()
    finally:
        printer.close()
        registered.unlink(missing_ok=True)
        shutil.rmtree(run_dir, ignore_errors=True)
    return _run_exit_code(sup, printer)


def _has_terminal() -> bool:
    try:
        os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY))
        return True
    except OSError:
        return False


def _hangup_check(printer: Any) -> Any:
    """SIGHUP to a ``run`` reloads its config (``kill -HUP``), except when the controlling terminal it had
    at start is gone (a hangup takes it away from the whole session): then the terminal descriptors are
    pointed at /dev/null, the progress output goes to the log, and the run finishes detached."""
    had_terminal = _has_terminal()
    tty_fds = tuple(fd for fd in (0, 1, 2) if os.isatty(fd))

    def hung_up() -> bool:
        if not had_terminal or _has_terminal():
            return False
        if 1 in tty_fds:
            printer.detach("terminal hung up", fds=tty_fds)
        else:                                   # stdout goes to a file or pipe: it keeps getting the output
            from .console import silence_fds
            silence_fds(tty_fds)
        return True
    return hung_up


def _run_exit_code(sup: Any, printer: Any) -> int:
    """See ``EXIT_CODES``."""
    from .models import skipped_by_accident
    for fault in sup.storage_faults:             # a report or journal that could not be written is a failed run
        _err(f"liuma-pipeline: storage fault: {fault}")
    if sup.fatal:
        _err(f"liuma-pipeline: run aborted: {sup.fatal}")
        return 1
    if sup.storage_faults:
        return 1
    if sup._signal:
        return 143 if sup._signal == "SIGTERM" else 130
    if not sup.reported:
        _err("liuma-pipeline: the run ended without a report")
        return 1
    last = sup.reported[-1]
    t = last["totals"]
    if sup.draining_since is not None:            # stopped by `liuma-pipeline stop`
        return 1
    seen = list(printer.finals.values())                # case.reported is best effort: count it only when complete
    if t["cases"] and t["skipped"] == t["cases"] and (len(seen) != t["cases"] or skipped_by_accident(seen)):
        _err("liuma-pipeline: every case was skipped, and not only by enabled=false: the run is no success")
        return 1
    muted = len(last.get("muted") or [])             # [Flaky] mute: reported, listed in the recap, not counted here
    return 0 if t["failed"] + t["error"] - muted <= 0 and not last.get("missing") else 1


def _err(text: str) -> None:
    try:
        print(text, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


RUNS_DIR = "runs"


def _register_run(storage: Path, run_dir: Path, suite: str, task_id: str) -> Path:
    """``<storage-root>/runs/<pid>.json`` points `status` and `stop` at this run's control socket (the run
    directory itself is a temporary one); removed when the run ends, ignored once the pid is gone."""
    d = storage / RUNS_DIR
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{os.getpid()}.json"
    tmp = d / f".{os.getpid()}.tmp"
    tmp.write_text(json.dumps({"pid": os.getpid(), "control": f"ipc://{run_dir / 'control.sock'}", "run_dir": str(run_dir),
                               "suite": _abs(suite), "task_id": task_id, "started_at": time.time()}))
    tmp.replace(path)
    return path


def live_runs(storage: Path) -> list[dict[str, Any]]:
    """Registered ``run`` processes that are still alive, newest first (stale entries are removed)."""
    out = []
    for p in sorted((storage / RUNS_DIR).glob("*.json")):
        try:
            entry = json.loads(p.read_text())
            os.kill(int(entry["pid"]), 0)
        except ProcessLookupError:
            p.unlink(missing_ok=True)
            continue
        except (OSError, ValueError, KeyError, TypeError):
            continue
        out.append(entry)
    return sorted(out, key=lambda e: -float(e.get("started_at") or 0))


def _redaction_secrets(cfg: Config) -> list[str]:
    from .platform import redaction_secrets
    return redaction_secrets(str(cfg.get("Engine", "engine-secret") or ""), cfg.headers.get("token", ""), cfg.path)


def _supervisor_logging(cfg: Config, storage: Path) -> None:
    from .log import setup_logging
    setup_logging(storage / "log", "supervisor", level=cfg.get("Logging", "level"), file_size_mb=cfg.get("Logging", "file-size"),
                  backups=cfg.get("Logging", "backup-count"), secrets=_redaction_secrets(cfg),
                  console=True, fmt=cfg.get("Logging", "format"))


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
    kinds = {"API"} | ({"WEB"} if cfg.get("Pipeline", "browsers") != 0 else set())
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
    from .profiling import mark
    mark("suite loaded")
    from .supervisor import Supervisor
    _supervisor_logging(cfg, Path(storage))
    sup = Supervisor(spec)
    try:
        sup.run()
    finally:
        pid_file.unlink(missing_ok=True)
    return 1 if sup.fatal else 0


def _engine_alive(run_dir: Path) -> bool:
    try:
        os.kill(int((run_dir / "engine.pid").read_text()), 0)
        return True
    except (OSError, ValueError):
        return False


def _target(args: argparse.Namespace) -> tuple[str, str]:
    """(control endpoint, what it is) of the process ``status``/``stop``/``reload`` talk to: ``--pid`` names
    a ``run``; otherwise the engine (``start``) when it runs, else the newest running ``run``."""
    cfg = _config(args)
    engine = _engine_dir(cfg)
    runs = live_runs(Path(_abs(cfg.get("Pipeline", "storage-root"))))
    pid = getattr(args, "pid", None)
    if pid is not None:
        for r in runs:
            if int(r["pid"]) == pid:
                return r["control"], f"run pid {pid}"
        raise PipelineError(f"no running `run` with pid {pid} (running: {', '.join(str(r['pid']) for r in runs) or 'none'})")
    if _engine_alive(engine) or (not runs and (engine / "control.sock").exists()):
        return f"ipc://{engine / 'control.sock'}", "engine"
    if not runs:
        raise PipelineError(f"nothing is running: no engine (no live pid in {engine / 'engine.pid'}) and no `run` "
                            f"registered in {Path(_abs(cfg.get('Pipeline', 'storage-root'))) / RUNS_DIR}")
    return runs[0]["control"], f"run pid {runs[0]['pid']}"


def _request(args: argparse.Namespace, req: dict[str, Any]) -> dict[str, Any]:
    from .transport import control_request
    endpoint, _ = _target(args)
    return control_request(endpoint, req)


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
    from .progress import history_eta
    eta = history_eta(st)
    print(f"queued units: {q.get('queued_units', 0)}  tasks in flight: {q.get('tasks', 0)}"
          + (f"  ETA {eta:.0f} s (run history)" if eta is not None else ""))
    if st.get("disk_short"):
        print(f"DISK SHORT: {st['disk_short']}")
    for fault in st.get("storage_faults") or []:
        print(f"STORAGE FAULT: {fault}")
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


VERSION = "0.1.0"          # = pyproject.toml's version (a test keeps them equal)

EXIT_CODES = """exit codes:
  0    run: every case passed (or was flaky, or skipped by enabled=false / left out by --tags);
       other commands: done
  1    run: a case failed, errored or broke, results are missing, every case was skipped otherwise,
       the run was stopped by `liuma-pipeline stop`, or it could not finish; other commands: the
       engine/run did not answer or refused
  2    bad usage, config or suite (the message names the file and field)
  130  run: interrupted by Ctrl-C (SIGINT); 143: stopped by SIGTERM
       (the reports are written either way, finished, with a row and a reason for every case)"""


def _default(key: str, section: str = "Pipeline") -> Any:
    from .config import SCHEMA
    return SCHEMA[section][key][1]


def _tags(value: str) -> list[str]:
    tags = [t.strip() for t in value.split(",") if t.strip()]
    if not tags:
        raise argparse.ArgumentTypeError("give at least one tag (TAG or TAG1,TAG2)")
    return tags


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30, width=min(100, shutil.get_terminal_size((100, 24)).columns))

    def _split_lines(self, text: str, width: int) -> list[str]:
        import textwrap
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)   # keep "case-timeout" whole


def _config_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE",
                   help="config.ini to read (default: config/config.ini of the project; a missing default file "
                        "means all defaults)")


def _target_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pid", type=int, metavar="PID",
                   help="talk to the `run` with this process id (default: the engine started by `start` when it "
                        "runs, else the newest running `run`)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="liuma-pipeline", formatter_class=_Formatter, epilog=EXIT_CODES,
                                 description="LiuMa-compatible test-execution engine: `run SUITE` runs one suite\n"
                                             "locally and exits; `start` is the long-running engine of a LiuMa platform.\n"
                                             "`liuma-pipeline COMMAND --help` tells more about each command.")
    ap.add_argument("--version", action="version", version=f"liuma-pipeline {VERSION}")
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    ap._subcommands = {}  # type: ignore[attr-defined]

    def command(name: str, help: str, description: str = "") -> argparse.ArgumentParser:
        import textwrap
        text = "\n\n".join(textwrap.fill(par, 100) for par in (description or help).split("\n\n"))
        p = sub.add_parser(name, help=help, description=text, formatter_class=_Formatter, epilog=EXIT_CODES)
        ap._subcommands[name] = p  # type: ignore[attr-defined]
        return p

    r = command("run", "run one suite (a LiuMa package directory or .zip) and exit",
                "Run one suite and exit: one line per finished case (or a live bar on a terminal), the reports in "
                "REPORT_DIR/<taskId>/ and a recap at the end.\n\nCtrl-C stops it: no new case starts, running cases "
                "get [Pipeline] stop-grace seconds, then are killed; a second Ctrl-C skips the grace. If the terminal "
                "hangs up (an SSH drop) the run goes on detached with its output in the log and writes its reports "
                "as usual; `liuma-pipeline status` shows it, `liuma-pipeline stop` stops it.")
    r.add_argument("suite", metavar="SUITE", help="the suite: a directory with task.json and one folder per collection, or a .zip of it")
    _config_option(r)
    r.add_argument("--report-dir", metavar="DIR",
                   help=f"where reports go, one folder per task (default: [Pipeline] report-dir, {_default('report-dir')!r})")
    r.add_argument("--api-workers", type=int, metavar="N",
                   help=f"executors for API cases only (default: [Pipeline] api-workers, {_default('api-workers')})")
    r.add_argument("--browsers", metavar="N|auto|grid",
                   help=f"executors with a headless browser, for WEB and API cases: a number, auto (sized from the host's "
                        f"cores, memory and /dev/shm; executors above the current capacity park) or grid (the slots of "
                        f"the Selenium Grid at [WebDriver] remote-url) (default: [Pipeline] browsers, "
                        f"{_default('browsers')}; none are started for a suite without WEB cases)")
    r.add_argument("--case-timeout", type=float, metavar="SECONDS",
                   help=f"deadline of a case without its own timeout, in seconds; past it the case is killed and "
                        f"reported as an error (default: [Pipeline] case-timeout, {_default('case-timeout'):g} s)")
    r.add_argument("--tags", type=_tags, action="append", metavar="TAG[,TAG...]",
                   help="only cases carrying one of these tags; repeat the option or separate tags with commas "
                        "(default: every case)")
    r.add_argument("--progress", choices=("auto", "bar", "plain"), default="auto",
                   help="bar: a redrawn progress bar with rate and ETA; plain: one line per case (CI logs); "
                        "auto: bar on a terminal, plain otherwise (default: auto)")
    r.set_defaults(func=cmd_run)
    s = command("start", "start the long-running engine (platform mode)",
                "Start the long-running engine: it polls the LiuMa platform of [Platform] url for tasks and runs them. "
                "It forks into the background unless --foreground. SIGHUP or `liuma-pipeline reload` re-reads the "
                "config; SIGINT, SIGTERM or `liuma-pipeline stop` stop it (running cases get [Pipeline] stop-grace s).")
    _config_option(s)
    s.add_argument("--foreground", action="store_true", help="stay in the foreground, logging to the terminal (default: fork into the background)")
    s.set_defaults(func=cmd_start)
    # submit and history live in pipeline/submit.py and pipeline/history_cli.py
    from .history_cli import add_parser as add_history_parser
    from .submit import add_parser as add_submit_parser
    add_submit_parser(command, _config_option)
    add_history_parser(command, _config_option)
    for name, func, help in (("stop", cmd_stop, "stop the engine or a running `run` (running cases get [Pipeline] stop-grace s)"),
                             ("status", cmd_status, "show the stages, executors, queues and tasks of the engine or a running `run`"),
                             ("reload", cmd_reload, "make the engine or a running `run` re-read its config file (an invalid file is refused)")):
        p = command(name, help)
        _config_option(p)
        _target_option(p)
        if name == "status":
            p.add_argument("--json", action="store_true", help="print the full status as JSON (the same for `start` and `run`)")
        p.set_defaults(func=func)
    k = command("keys", "generate CURVE keys for the tcp transport")
    k.add_argument("--dir", default="config/curve", metavar="DIR", help="key directory (default: config/curve)")
    k.set_defaults(func=cmd_keys)
    e = command("encrypt-secret", "print enc:<...> for a value of [Engine] engine-secret")
    e.add_argument("--key-file", default="config/secret.key", metavar="FILE",
                   help="Fernet key file, created 0600 if missing (default: config/secret.key)")
    e.add_argument("value", metavar="VALUE", help="the secret to encrypt")
    e.set_defaults(func=cmd_encrypt_secret)
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args, extra = ap.parse_known_args(argv)
    if extra:                                   # the subcommand's usage, not the top-level one
        ap._subcommands[args.cmd].error(f"unrecognized arguments: {' '.join(extra)}")  # type: ignore[attr-defined]
    if getattr(args, "tags", None):
        args.tags = [t for group in args.tags for t in group]
    browsers = getattr(args, "browsers", None)
    if browsers is not None and not (browsers.strip().lower() in ("auto", "grid") or browsers.strip().isdigit()):
        ap._subcommands[args.cmd].error(f"--browsers must be >= 0 (a number), auto or grid, not {browsers!r}")  # type: ignore[attr-defined]
    for opt in ("api_workers", "case_timeout"):
        v = getattr(args, opt, None)
        if v is not None and v < 0:
            ap._subcommands[args.cmd].error(f"--{opt.replace('_', '-')} must be >= 0, not {v:g}")  # type: ignore[attr-defined]
    from .profiling import Profile
    # ``run``/``start`` import and build ~0.3 s worth of objects before the stages exist, none of them garbage:
    # the cyclic GC pauses until the supervisor has forked the launcher (``Supervisor.start`` freezes what
    # was built and turns it back on; ~10 % of the start-up's CPU). Back on here whatever happens.
    startup = args.cmd in ("run", "start")
    if startup:
        gc.disable()
    try:
        with Profile(f"cli-{args.cmd}"):
            return int(args.func(args))
    except (ConfigError, SuiteError) as e:
        _err(f"liuma-pipeline: {e}")
        return 2
    except (TransportError, PipelineError) as e:
        _err(f"liuma-pipeline: {e}")
        return 1
    except OSError as e:                        # e.g. the run dir on a full disk: name the file and errno, no traceback
        from .storage import fault_text
        print(f"liuma-pipeline: {fault_text(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        if startup:
            gc.enable()


if __name__ == "__main__":
    sys.exit(main())
