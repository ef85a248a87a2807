from __future__ import annotations

import io
import json
import stat
import uuid
import warnings
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.errors import SuiteError
from pipeline.package import is_zip_bytes, safe_extract


def make_zip(entries: list[tuple[str | zipfile.ZipInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return buf.getvalue()


def platform_zip(task_id: str, cases: dict[str, dict[str, object]]) -> bytes:
    """Like the platform's ZipUtils: directory entries, leading slash on every name, pretty UTF-8 JSON."""
    entries: list[tuple[str | zipfile.ZipInfo, bytes]] = [(f"/{task_id}/", b"")]
    for collection, case in cases.items():
        entries.append((f"/{task_id}/{collection}/", b""))
        entries.append((f"/{task_id}/{collection}/{case['caseId']}.json",
                        json.dumps(case, ensure_ascii=False, indent=2).encode()))
    return make_zip(entries)


def test_platform_zip_with_leading_slashes_and_directory_entries(tmp_path: Path) -> None:
    data = platform_zip("t-1", {"c-1": {"caseId": "k-1", "caseName": "登录"}, "c-2": {"caseId": "k-2", "caseName": None}})
    files = safe_extract(data, tmp_path / "out")
    assert files == [tmp_path / "out/t-1/c-1/k-1.json", tmp_path / "out/t-1/c-2/k-2.json"]
    assert json.loads(files[0].read_text("utf-8"))["caseName"] == "登录"
    assert json.loads(files[1].read_text("utf-8")) == {"caseId": "k-2", "caseName": None}


def test_extracts_from_a_path(tmp_path: Path) -> None:
    src = tmp_path / "pkg.zip"
    src.write_bytes(make_zip([("a/b.txt", b"hello")]))
    assert safe_extract(src, tmp_path / "out") == [tmp_path / "out/a/b.txt"]
    assert (tmp_path / "out/a/b.txt").read_bytes() == b"hello"


def test_corrupt_zip_names_the_file(tmp_path: Path) -> None:
    src = tmp_path / "task-9.zip"
    src.write_bytes(b'{"status":1000,"message":"\xe5\xa4\xb1\xe8\xb4\xa5","data":"file missing"}')
    with pytest.raises(SuiteError, match="task-9.zip.*not a valid zip"):
        safe_extract(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_truncated_zip_is_refused(tmp_path: Path) -> None:
    data = make_zip([("a.txt", b"x" * 1000)])
    with pytest.raises(SuiteError, match="task t-7"):
        safe_extract(data[: len(data) // 2], tmp_path / "out", label="task t-7")


@pytest.mark.parametrize("entry, why", [
    ("../evil.txt", "'..'"),
    ("a/../../evil.txt", "'..'"),
    ("//etc/evil.txt", "absolute"),
    ("C:/evil.txt", "drive letter"),
    ("a\\..\\evil.txt", "backslash"),
])
def test_path_escapes_are_refused_before_writing(tmp_path: Path, entry: str, why: str) -> None:
    data = make_zip([("ok.txt", b"fine"), (entry, b"pwned")])
    with pytest.raises(SuiteError, match=why) as info:
        safe_extract(data, tmp_path / "out")
    assert repr(entry) in str(info.value)
    assert not (tmp_path / "out" / "ok.txt").exists()  # validated before anything was written
    assert not (tmp_path / "evil.txt").exists()


def test_symlink_entry_is_refused(tmp_path: Path) -> None:
    link = zipfile.ZipInfo("data/link")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    data = make_zip([(link, b"/etc/passwd")])
    with pytest.raises(SuiteError, match="'data/link' refused: symbolic link"):
        safe_extract(data, tmp_path / "out")


def test_existing_symlink_in_dest_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "d").symlink_to(outside)
    with pytest.raises(SuiteError, match="outside the destination"):
        safe_extract(make_zip([("d/x.txt", b"x")]), tmp_path / "out")
    assert list(outside.iterdir()) == []


def test_declared_total_above_limit(tmp_path: Path) -> None:
    data = make_zip([("a.bin", b"\0" * 600), ("b.bin", b"\0" * 600)])
    with pytest.raises(SuiteError, match="'b.bin'.*limit of 1000"):
        safe_extract(data, tmp_path / "out", max_total_bytes=1000)
    assert not (tmp_path / "out" / "a.bin").exists()


def test_huge_declared_size_in_header(tmp_path: Path) -> None:
    data = make_zip([("bomb.bin", b"\0" * 100)])
    # Patch the central directory's uncompressed size field to 4 GiB - 1.
    cd = data.rfind(b"PK\x01\x02")
    patched = data[: cd + 24] + (2**32 - 1).to_bytes(4, "little") + data[cd + 28:]
    with pytest.raises(SuiteError, match="bomb.bin"):
        safe_extract(patched, tmp_path / "out")
    assert not (tmp_path / "out" / "bomb.bin").exists()


def test_lying_small_declared_size_is_caught_while_streaming(tmp_path: Path) -> None:
    data = make_zip([("bomb.bin", b"\0" * 200_000)])
    cd = data.rfind(b"PK\x01\x02")
    patched = data[: cd + 24] + (10).to_bytes(4, "little") + data[cd + 28:]
    with pytest.raises(SuiteError, match="bomb.bin"):
        safe_extract(patched, tmp_path / "out", max_total_bytes=1000)
    assert not (tmp_path / "out" / "bomb.bin").exists()


def test_too_many_entries(tmp_path: Path) -> None:
    data = make_zip([(f"f{i}", b"") for i in range(5)])
    with pytest.raises(SuiteError, match="5 entries exceed the limit of 4"):
        safe_extract(data, tmp_path / "out", max_files=4)


def test_is_zip_bytes() -> None:
    assert is_zip_bytes(make_zip([("a", b"b")]))
    assert not is_zip_bytes(b'{"status":2030,"message":"token expired","data":null}')
    assert not is_zip_bytes(b"PK\x03\x04 truncated")
    assert not is_zip_bytes(b"")


_segment = st.one_of(st.sampled_from(["..", ".", "", "a", "b", "C:", "a\\..", "~", " ", "\x00"]),
                     st.text(alphabet="ab./\\:", max_size=4))
_entry_name = st.tuples(st.sampled_from(["", "/", "//"]), st.lists(_segment, min_size=1, max_size=5)).map(
    lambda t: t[0] + "/".join(t[1]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(_entry_name, min_size=1, max_size=4))
def test_random_names_never_escape_dest(tmp_path: Path, names: list[str]) -> None:
    base = tmp_path / uuid.uuid4().hex
    dest = base / "jail" / "dest"
    dest.mkdir(parents=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # duplicate names are allowed in zips and worth testing
            data = make_zip([(n, b"x") for n in names])
    except (ValueError, OSError, IndexError):
        return  # zipfile itself refuses the name
    try:
        written = safe_extract(data, dest)
    except SuiteError:
        written = []
    for path in written:
        assert path.resolve().is_relative_to(dest.resolve())
    everything = [p for p in base.rglob("*")]
    assert all(p == base / "jail" or p.is_relative_to(dest) for p in everything), everything


def test_a_500_mib_zip_bomb_is_refused_by_default_before_anything_is_written(tmp_path: Path) -> None:
    z = tmp_path / "bomb.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("c1/k1.json", "w", force_zip64=True) as f:
            chunk = b"\0" * 2**20
            for _ in range(500):
                f.write(chunk)
    assert z.stat().st_size < 5 * 2**20
    with pytest.raises(SuiteError, match="bomb.zip"):
        safe_extract(z, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*"))
