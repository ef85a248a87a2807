"""The CLI explains itself: help with defaults and units for every option, exit codes, --version,
--tags that cannot swallow SUITE, the subcommand's own usage on a bad option."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline import cli


def help_of(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as e:
        cli.main([*argv, "--help"])
    assert e.value.code == 0
    return capsys.readouterr().out


def test_every_option_of_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    ap = cli.build_parser()
    for name, sub in ap._subcommands.items():  # type: ignore[attr-defined]
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"
    text = " ".join(help_of(capsys, "run").split())
    for needle in ("SUITE", "default: [Pipeline] report-dir, 'reports'", "api-workers, 2", "browsers, 1",
                   "in seconds", "case-timeout, 300 s", "TAG[,TAG...]", "exit codes:", "130", "hangs up"):
        assert needle in text, needle
    for name in ("stop", "status", "reload"):
        assert "--pid" in help_of(capsys, name)


def test_version_matches_pyproject(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    pyproject = (Path(cli.__file__).resolve().parent.parent / "pyproject.toml").read_text()
    version = re.search(r'^version = "([^"]+)"', pyproject, re.M).group(1)  # type: ignore[union-attr]
    assert capsys.readouterr().out.strip() == f"liuma-pipeline {version}" == f"liuma-pipeline {cli.VERSION}"


def test_tags_do_not_swallow_the_suite() -> None:
    ap = cli.build_parser()
    args = ap.parse_args(["run", "--tags", "smoke", "suite-dir", "--tags", "api,web"])
    assert args.suite == "suite-dir" and args.tags == [["smoke"], ["api", "web"]]


def test_a_bad_option_prints_the_subcommand_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        cli.main(["run", "--bogus", "x"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: liuma-pipeline run ") and "unrecognized arguments: --bogus" in err
    with pytest.raises(SystemExit):
        cli.main(["run", "--browsers", "-1", "x"])
    assert "liuma-pipeline run: error: --browsers must be >= 0" in capsys.readouterr().err
