"""Runs the cases of one unit in a worker thread, so the stage loop stays free for heartbeats, acks and
re-sends while a case takes minutes. The thread talks to the loop through a queue plus a wake-up pipe
(registered in the ZeroMQ poller), never through a socket: sockets belong to the loop's thread.
"""
from __future__ import annotations

import html
import importlib
import logging
import os
import queue
import re
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import DeviceDown, InfrastructureError, PipelineError
from pipeline.messages import CaseFinished, CaseStarted, UnitDone
from pipeline.models import CaseResult, Outcome, Status, engine_result
from pipeline.profiling import profiled
from pipeline.suite import case_path, read_case

from .common.evidence import EvidenceSpec
from .context import CaseRunner, RunContext, RunSettings

__all__ = ["UnitWorker", "RUNNER_CLASSES", "Event", "Ready", "ProbeDone"]

log = logging.getLogger("stages.executor")

# case type -> "module:Class"; imported on first use so an API-only executor never imports Selenium.
RUNNER_CLASSES = {
    "API": "stages.executor.api:ApiRunner",
    "WEB": "stages.executor.web:WebRunner",
    "APP": "stages.executor.app:AppRunner",
}

@dataclass(frozen=True)
class Ready:
    """The warm-up is over: the executor may announce credit."""


@dataclass(frozen=True)
class ProbeDone:
    """The health ladder asked for by ``device.probe`` ran; ``error`` is why it failed ("" when it passed)."""
    ok: bool
    error: str = ""


Event = CaseStarted | CaseFinished | UnitDone | Ready | ProbeDone     # thread -> loop; the first three are sent as is


class UnitWorker:
    """Owns the runners and the collection-scoped resources of one executor process."""

    def __init__(self, name: str, settings: RunSettings, storage_root: Path, device: dict[str, Any] | None,
                 fetch_file: Callable[[str], tuple[str, bytes]] | None = None) -> None:
        self.name, self.settings, self.storage_root, self.device = name, settings, storage_root, device
        self.fetch_file = fetch_file
        self.events: queue.Queue[Event] = queue.Queue()
        self.rfd, self.wfd = os.pipe()
        self._woken = False             # a wake-up byte is in the pipe (or about to be): no second one needed
        os.set_blocking(self.rfd, False)
        self.runners: dict[str, CaseRunner] = {}
        self.shared: dict[str, Any] = {}
        self.last_collection: tuple[str, str] | None = None
        self.thread: threading.Thread | None = None
        self._active = False          # true from start_unit until unit.done is emitted (the thread may linger)
        self.stopping = False         # set by the stage on SIGTERM/stop: no new case starts
        self.held: set[str | None] = set()   # task ids (None: every task) whose next case must not start
        self.current: dict[str, Any] | None = None
        self.unit: dict[str, Any] | None = None          # the unit being run (a restarted scheduler adopts it)
        self.running: dict[str, Any] | None = None       # body of the last case.started
        self.step = ""
        self.on_case_start: Callable[[CaseStarted], None] | None = None   # called in the case thread, first
        self.down = ""                # the device failed its health ladder in this unit (DeviceDown's message)
        self.unit_ctx: RunContext | None = None      # the running unit's context (its recorder's flush hook)

    # -- thread side ----------------------------------------------------------------------------
    def _emit(self, event: Event, wake: bool = True) -> None:
        """Hand ``event`` to the loop; ``wake=False`` leaves it for the loop's next turn (its end, or the
        regular tick at most ``Executor.POLL_MS`` later) instead of waking the loop for it alone."""
        self.events.put(event)
        if not wake or self._woken:                 # the loop has a wake-up byte it has not drained yet: it will see this too
            return
        self._woken = True
        try:
            os.write(self.wfd, b"x")
        except BlockingIOError:
            pass

    def flush_evidence(self, reason: str) -> None:
        """The process is being killed (SIGTERM from the supervisor, browser and driver with it): the running
        attempt's recorder keeps what it collected until now. Called on the stage's main thread."""
        ctx = self.unit_ctx
        flush = ctx.evidence_flush if ctx is not None else None
        if flush is not None:
            try:
                flush(reason)
            except Exception as e:  # noqa: BLE001 - evidence never stands in the way of the stop
                log.warning("%s: evidence of the killed attempt not kept: %s", self.name, e)

    def hold(self, task_id: str | None) -> None:
        """No case of ``task_id`` (None: of any task) starts from now on; the running one goes on."""
        self.held.add(task_id)

    def _held(self, task_id: str) -> bool:
        return None in self.held or task_id in self.held

    def busy(self) -> bool:
        return self._active

    def start_unit(self, unit: dict[str, Any]) -> None:
        if self.thread is not None:
            self.thread.join(timeout=5)       # already past its unit.done: only the thread's exit is left
        self.unit = unit
        self._active = True
        name = f"unit-{unit['unit_id'][:8]}"
        self.thread = threading.Thread(target=profiled(lambda: self._run_unit(unit), f"{self.name}-{name}"), name=name, daemon=True)
        self.thread.start()

    def runner(self, case_type: str) -> CaseRunner:
        r = self.runners.get(case_type)
        if r is None:
            target = RUNNER_CLASSES.get(case_type)
            if target is None:
                raise PipelineError(f"no runner for caseType {case_type!r} (known: {', '.join(RUNNER_CLASSES)})")
            mod, cls = target.split(":")
            r = self.runners[case_type] = getattr(importlib.import_module(mod), cls)()
        return r

    def warm_up(self) -> bool:
        """Let runners that can (a browser executor) start their default resource before the first case, on
        the worker thread, so it is not paid inside a case deadline. The executor stays busy meanwhile and
        announces credit when the "ready" event arrives. Returns False when nothing needs warming."""
        runners = [r for r in self.runners.values() if hasattr(r, "warm_up")]
        if not runners:
            return False
        self._active = True

        def run() -> None:
            try:
                ctx = self._ctx({"task_id": "", "collection_id": "", "data_dir": "."}, {})
                for r in runners:
                    took = r.warm_up(ctx)
                    log.info("%s: %s warmed up in %.2f s", self.name, r.case_type, took)
            except Exception as e:      # the first case reports a real start failure
                log.warning("%s: warm-up failed: %s", self.name, e)
            finally:
                self._active = False
                self._emit(Ready())
        self.thread = threading.Thread(target=run, name="warm-up", daemon=True)
        self.thread.start()
        return True

    def check(self, kinds: Any, ctx: RunContext) -> str:
        """The health ladder of the runners that have one (APP: Appium ``/status``, session alive, new
        session); "" when healthy, else why not."""
        for r in (self.runners.get(k) for k in kinds):
            if r is None or not hasattr(r, "check"):
                continue
            try:
                note = r.check(ctx)
                if note:
                    log.info("%s: %s", self.name, note)
            except DeviceDown as e:
                return str(e)
            except Exception as e:  # noqa: BLE001 - a check that cannot run says the device is not usable
                return f"{type(e).__name__}: {e}"
        return ""

    def probe(self) -> bool:
        """The quarantine probe, asked for by the scheduler: the ladder on the worker thread, answered with a
        "probe" event. False when busy (the scheduler asks again on its schedule)."""
        if self._active:
            return False
        self._active = True

        def run() -> None:
            error = "no runner to check"
            try:
                error = self.check(list(self.runners), self._ctx({"task_id": "", "collection_id": "", "data_dir": "."}, {}))
            finally:
                self._active = False
                self._emit(ProbeDone(ok=not error, error=error))
        self.thread = threading.Thread(target=run, name="probe", daemon=True)
        self.thread.start()
        return True

    def idle_tick(self) -> None:
        """While no unit runs (the stage loop calls it every tick): runners give back what an idle executor
        must not hold (``WebRunner.idle``: a Grid session someone queues for)."""
        if self._active or self.unit is not None:
            return
        runners = [r for r in self.runners.values() if hasattr(r, "idle")]
        if not runners:
            return
        ctx = self._ctx({"task_id": "", "collection_id": "", "data_dir": "."}, {})
        for r in runners:
            try:
                r.idle(ctx)
            except Exception as e:  # noqa: BLE001 - never the loop's end: the next tick tries again
                log.warning("%s: idle housekeeping of %s failed: %s", self.name, r.case_type, e)

    def reset_between_collections(self, ctx: RunContext) -> None:
        for r in self.runners.values():
            reset = getattr(r, "reset_shared", None)
            try:
                (reset or r.close_shared)(ctx)
            except Exception as e:
                log.warning("%s: resetting %s resources failed: %s", self.name, r.case_type, e)

    def close(self) -> None:
        ctx = self._ctx({"task_id": "", "collection_id": "", "data_dir": "."}, {})
        for r in self.runners.values():
            try:
                r.close_shared(ctx)
            except Exception as e:
                log.warning("%s: closing %s resources failed: %s", self.name, r.case_type, e)

    def _ctx(self, unit: dict[str, Any], variables: dict[str, Any]) -> RunContext:
        return RunContext(task_id=unit["task_id"], collection_id=unit["collection_id"], storage_root=self.storage_root,
                          data_dir=Path(unit["data_dir"]), settings=self.settings, variables=variables,
                          shared=self.shared, fetch_file=self.fetch_file, on_step=self._on_step,
                          executor_name=self.name, device=self.device)

    def _on_step(self, name: str) -> None:
        self.step = name

    def _run_unit(self, unit: dict[str, Any]) -> None:
        variables: dict[str, Any] = dict(unit.get("variables") or {})
        coll = (unit["task_id"], unit["collection_id"])
        ctx = self.unit_ctx = self._ctx(unit, variables)
        if self.last_collection is not None and self.last_collection != coll:
            self.reset_between_collections(ctx)
        self.last_collection = coll
        statuses: dict[str, int] = {}
        self.down = self.check({c["case_type"] for c in unit["cases"]}, ctx)     # before the unit: cheap
        broke = False
        try:
            for case in unit["cases"]:
                if self.stopping:             # the executor is being stopped: leave the rest to the scheduler
                    break
                if self._held(unit["task_id"]):   # the engine/task is stopping: the scheduler settles the rest
                    log.info("%s: stop asked; case %s and the rest of unit %s not started", self.name,
                             case["case_id"], unit["unit_id"][:8])
                    break
                if self.down:                 # the device failed its ladder: hand the unstarted rest back (unit.done
                    break                     # says why; the scheduler holds the device and re-queues them elsewhere)
                bad = [d for d in case.get("dependencies") or () if d in statuses and statuses[d] != Status.PASS]
                result = self._run_case(unit, case, ctx, skip_reason=f"skipped: dependency {', '.join(bad)} did not pass" if bad else "")
                statuses[case["case_id"]] = result.status
                broke = broke or result.outcome == Outcome.BROKEN.value
            if broke and not self.down and not self.stopping:   # a case broke: is the device still usable?
                self.down = self.check({c["case_type"] for c in unit["cases"]}, ctx)
        finally:
            self.current = self.running = None
            if not self.stopping:             # an unfinished unit is re-queued by the scheduler when we die
                self._active = False
                self._emit(UnitDone(unit_id=unit["unit_id"], device_down=self.down))

    def _run_case(self, unit: dict[str, Any], case: dict[str, Any], ctx: RunContext, skip_reason: str) -> CaseResult:
        budget = float(case.get("timeout") or 300)
        ctx.deadline = time.monotonic() + budget
        self.step = ""
        data = _read(unit, case)              # before case.started: a kill reported from then on names the case
        if data is not None and not skip_reason:
            ctx.attempt = int(case.get("run_times") or 1)
            self._prepare(case, data, ctx)        # a reset or fresh browser, a Grid session: not the case's time
            ctx.deadline = time.monotonic() + budget
        name = str((data or {}).get("caseName") or "")
        self.current = {"case_id": case["case_id"], "index": case["index"], "run_times": case["run_times"],
                        "task_id": unit["task_id"], "deadline_s": budget, "t0": time.monotonic(),
                        "name": name or case["case_id"]}
        started = CaseStarted(unit_id=unit["unit_id"], task_id=unit["task_id"], collection_id=unit["collection_id"],
                              case_id=case["case_id"], index=case["index"], run_times=case["run_times"], deadline_s=budget,
                              started_ms=int(time.time() * 1000))
        self.running = started.to_wire()
        if self.on_case_start is not None:        # before any case code: the supervisor's clock starts now
            try:
                self.on_case_start(started)
            except Exception as e:
                log.debug("%s: case start notice failed: %s", self.name, e)
        # no wake-up for the start: a short case's end comes with it (the loop then sends the scheduler only
        # the end, and the supervisor one light heartbeat), a long one's start is sent at the loop's next
        # tick; the supervisor's deadline clock started from the notice above, not from this event
        self._emit(started, wake=False)
        t0 = int(started.started_ms or 0)
        ctx.evidence, ctx.evidence_result = self._evidence(unit, case), {}
        if skip_reason:
            result = _engine_result(case, t0, Status.SKIP, Outcome.SKIPPED, skip_reason)
        else:
            result = self._execute(unit, case, ctx, t0, data)
        down = bool(self.down)                # DeviceDown in this case: the scheduler holds the device now
        if ctx.evidence_result:                  # kept by the runner, also when the attempt became broken
            result.evidence = ctx.evidence_result
        result.taskId, result.collectionId = unit["task_id"], unit["collection_id"]
        result.caseId = case["case_id"]          # the task's id, not the file's: a row is never filed elsewhere
        result.index, result.runTimes, result.executor = case["index"], case["run_times"], self.name
        if not result.endTime:
            result.endTime = int(time.time() * 1000)
        if result.outcome == Outcome.PASSED.value and result.status != Status.PASS:
            result.outcome = {Status.FAIL: "failed", Status.ERROR: "error", Status.SKIP: "skipped"}[Status(result.status)]
        if result.status == Status.PASS and case["run_times"] > 1:
            result.outcome = Outcome.FLAKY.value
        if not result.reason and result.status in (Status.FAIL, Status.ERROR):
            result.reason = failure_reason(result.transactionList)     # the one line `run` prints for it
        s = started
        self._emit(CaseFinished(unit_id=s.unit_id, task_id=s.task_id, collection_id=s.collection_id, case_id=s.case_id,
                                index=s.index, run_times=s.run_times, deadline_s=s.deadline_s, started_ms=s.started_ms,
                                status=result.status, outcome=result.outcome, name=result.caseName, result=result.to_dict(),
                                reason=result.reason or "", variables=_plain(ctx.variables), device_down=down))
        return result

    def _prepare(self, case: dict[str, Any], data: dict[str, Any], ctx: RunContext) -> None:
        """The case's runner readies its resource before the case's clock starts (``WebRunner.prepare``)."""
        prepare = getattr(self.runners.get(case["case_type"]), "prepare", None)
        if prepare is None:
            return
        try:
            prepare(data, ctx)
        except Exception as e:  # noqa: BLE001 - the case itself then meets (and reports) the problem
            log.warning("%s: preparing case %s failed: %s", self.name, case["case_id"], e)

    def _evidence(self, unit: dict[str, Any], case: dict[str, Any]) -> EvidenceSpec:
        """The attempt's evidence policy: the task's ``evidence`` over ``[Evidence] keep``; bundles go to
        ``<report-dir>/<taskId>/`` (the unit's report dir: the one the aggregator writes the task's reports to)."""
        report_dir = unit.get("report_dir") or self.settings.report_dir
        return EvidenceSpec(keep=str(unit.get("evidence") or self.settings.evidence_keep), max_mb=self.settings.evidence_max_mb,
                            task_report_dir=Path(report_dir) / unit["task_id"] if report_dir and unit.get("task_id") else None,
                            collection_id=unit["collection_id"], case_id=case["case_id"], index=int(case["index"]),
                            attempt=int(case["run_times"]), video=self.settings.evidence_video,
                            secrets=self.settings.evidence_secrets)

    def _execute(self, unit: dict[str, Any], case: dict[str, Any], ctx: RunContext, t0: int,
                 data: dict[str, Any] | None = None) -> CaseResult:
        name = str((data or {}).get("caseName") or "")
        try:
            if data is None:                  # unreadable: read again for the error naming file and field
                data = read_case(case_path(Path(unit["data_dir"]), unit["collection_id"], case["case_id"]))
            outcome = self.runner(case["case_type"]).run(data, ctx)
            res = outcome.result
            res.caseType = case["case_type"]
            return res
        except InfrastructureError as e:
            if isinstance(e, DeviceDown):
                self.down = str(e)
            return _engine_result(case, t0, Status.ERROR, Outcome.BROKEN, f"broken: {e}", name)
        except Exception as e:   # a runner bug or unreadable case must not take the executor down
            if _looks_infrastructural(e):      # a driver/transport error a runner let through: still not the product's fault
                return _engine_result(case, t0, Status.ERROR, Outcome.BROKEN, f"broken: {type(e).__name__}: {e}", name)
            detail = "".join(traceback.format_exception_only(type(e), e)).strip()
            if self.settings.enable_stderr:
                detail += "<br>" + traceback.format_exc().replace("\n", "<br>")
            return _engine_result(case, t0, Status.ERROR, Outcome.ERROR, detail, name)

    # -- loop side ------------------------------------------------------------------------------
    def drain(self) -> list[Event]:
        """Every event so far. The thread writes a wake-up byte only when none is pending (``_woken``): a
        write per event was a syscall per case start and end. The flag is cleared after a first pass and the
        queue read again, so an event put while it was still set is taken now, and one put later writes."""
        try:
            while os.read(self.rfd, 4096):
                pass
        except BlockingIOError:
            pass
        out = self._take()
        self._woken = False
        return out + self._take()

    def _take(self) -> list[Event]:
        out = []
        while True:
            try:
                out.append(self.events.get_nowait())
            except queue.Empty:
                return out


def _engine_result(case: dict[str, Any], t0: int, status: Status, outcome: Outcome, reason: str,
                   name: str = "") -> CaseResult:
    """An attempt the runner could not produce a result for (ids are filled in by the caller); it carries the
    case's own name when its file could be read (the platform shows 未知 otherwise)."""
    return engine_result(task_id="", collection_id="", case_id=case["case_id"], case_type=case["case_type"],
                         index=case["index"], run_times=case["run_times"], status=status, outcome=outcome,
                         reason=reason, started_ms=t0, case_name=name or str(case.get("name") or ""))


def _read(unit: dict[str, Any], case: dict[str, Any]) -> dict[str, Any] | None:
    """The case's data, or None when it cannot be read (``_execute`` then reports why)."""
    try:
        return read_case(case_path(Path(unit["data_dir"]), unit["collection_id"], case["case_id"]))
    except Exception:  # noqa: BLE001
        return None


_LOG_PREFIX = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? - \w+ - ")


def failure_reason(steps: list[Any], limit: int = 200) -> str:
    """One line saying why a case failed: its first failed step's name and error (``detail.error``, else
    the failed assertions, else the step's last error log line), without markup, at most ``limit`` chars."""
    for step in steps:
        if not isinstance(step, dict) or step.get("status") not in (Status.FAIL, Status.ERROR):
            continue
        found = step.get("detail")
        detail: dict[str, Any] = found if isinstance(found, dict) else {}
        text = str(detail.get("error") or "")
        if not text:
            text = "; ".join(f"{v.get('check')}: {v.get('message')}" for v in detail.get("validators") or []
                             if isinstance(v, dict) and not v.get("result"))
        if not text:
            lines = [ln for ln in re.split(r"<br\s*/?>|\n", str(step.get("log") or "")) if ln.strip()]
            errors = [ln for ln in lines if re.search(r" - (Error|Fail\w*) - ", ln)]
            text = _LOG_PREFIX.sub("", (errors or lines or ["step failed"])[-1])
        text = html.unescape(re.sub(r"<[^>]+>", "", text))
        name = str(step.get("name") or "")
        line = " ".join((f"step {name}: {text}" if name and name != "未知" else text).split())
        return line if len(line) <= limit else line[:limit - 1] + "…"
    return ""


def _looks_infrastructural(e: BaseException) -> bool:
    """A connection-level error from the WebDriver/Appium client stack (urllib3, selenium session loss)."""
    module = type(e).__module__ or ""
    return (isinstance(e, ConnectionError) or module.startswith("urllib3")
            or type(e).__name__ in ("InvalidSessionIdException", "NoSuchDriverException"))


def _plain(variables: dict[str, Any]) -> dict[str, Any]:
    """Only msgpack-able values travel back to the scheduler (a retry continues from them)."""
    out: dict[str, Any] = {}
    for k, v in variables.items():
        if isinstance(v, (str, int, float, bool, type(None), list, dict, bytes)):
            out[str(k)] = v
    return out
