from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from stages.uploader.outbox import Outbox


def opened(root: Path, **kw: float) -> Outbox:
    box = Outbox(root, **kw)
    box.open()
    return box


def test_put_due_done_in_order(tmp_path: Path) -> None:
    box = opened(tmp_path)
    a = box.put("results", "t1", {"rows": [1]})
    b = box.put("screenshot", "t1", {"path": "/x.png"})
    c = box.put("results", "t2", {"rows": [2]})
    assert [i.id for i in box.due(0.0)] == [a, b, c]
    box.done(b)
    assert [i.id for i in box.due(0.0)] == [a, c]
    assert len(list((tmp_path / "items").glob("*.json"))) == 2


def test_items_survive_a_restart(tmp_path: Path) -> None:
    box = opened(tmp_path)
    ids = [box.put("results", "t1", {"rows": [{"caseName": "登录", "n": n}]}) for n in range(3)]
    box.done(ids[0])
    again = opened(tmp_path)
    assert [(i.id, i.payload["rows"][0]["n"]) for i in again.due(0.0)] == [(ids[1], 1), (ids[2], 2)]
    assert again.put("results", "t1", {"rows": []}) and again.pending()[-1].seq == 4   # seq continues


def test_crash_of_the_writer_process_loses_nothing_acknowledged(tmp_path: Path) -> None:
    code = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(Path.cwd())!r})
        from pathlib import Path
        from stages.uploader.outbox import Outbox
        box = Outbox(Path({str(tmp_path)!r})); box.open()
        for n in range(20):
            box.put("results", "t1", {{"rows": [n]}})
            print(n, flush=True)
        os._exit(1)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1, proc.stderr
    acknowledged = [int(x) for x in proc.stdout.split()]
    recovered = [i.payload["rows"][0] for i in opened(tmp_path).due(0.0)]
    assert recovered == acknowledged == list(range(20))


def test_torn_temp_file_and_garbage_item_are_set_aside(tmp_path: Path) -> None:
    box = opened(tmp_path)
    good = box.put("results", "t1", {"rows": [1]})
    (tmp_path / "items" / ".000000000009-x.json.tmp").write_text("{")
    (tmp_path / "items" / "000000000010-bad.json").write_text("{not json")
    again = opened(tmp_path)
    assert [i.id for i in again.due(0.0)] == [good]
    assert [p.name for p in again.dead()] == ["000000000010-bad.json"]
    assert not list((tmp_path / "items").glob(".*.tmp"))


def test_complete_waits_for_the_rest_of_its_task(tmp_path: Path) -> None:
    box = opened(tmp_path)
    r = box.put("results", "t1", {"rows": [1]})
    s = box.put("screenshot", "t1", {"path": "/a.png"})
    c = box.put("complete", "t1", {})
    other = box.put("complete", "t2", {})
    assert [i.id for i in box.due(0.0)] == [r, s, other]
    box.done(r)
    assert c not in [i.id for i in box.due(0.0)]
    box.failed(s, "gone", 0.0, permanent=True)        # a dead item no longer blocks completion
    assert [i.id for i in box.due(0.0)] == [c, other]


def test_complete_is_accepted_once_even_across_restarts(tmp_path: Path) -> None:
    box = opened(tmp_path)
    c = box.put("complete", "t1", {})
    assert box.put("complete", "t1", {}) == c
    box.done(c)
    assert box.put("complete", "t1", {}) == ""
    assert opened(tmp_path).put("complete", "t1", {}) == ""
    assert (tmp_path / "completed").read_text() == "t1"


def test_backoff_doubles_to_the_cap(tmp_path: Path) -> None:
    box = opened(tmp_path, first=1.0, cap=5.0)
    i = box.put("results", "t1", {"rows": [1]})
    delays = [box.failed(i, "refused", 100.0) for _ in range(5)]
    assert delays == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert box.due(104.9) == [] and [x.id for x in box.due(105.0)] == [i]
    assert box.pending()[0].last_error == "refused" and box.pending()[0].attempts == 5


def test_permanent_failure_goes_to_dead_with_its_error(tmp_path: Path) -> None:
    box = opened(tmp_path)
    i = box.put("screenshot", "t1", {"path": "/x.png"})
    assert box.failed(i, "status 1000 截图文件上传失败", 0.0, permanent=True) == 0.0
    assert len(box) == 0
    [dead] = box.dead()
    assert json.loads(dead.read_text())["id"] == i
    assert dead.with_suffix(".error").read_text() == "status 1000 截图文件上传失败"


def test_unknown_kind_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown kind 'result'"):
        opened(tmp_path).put("result", "t1", {})
