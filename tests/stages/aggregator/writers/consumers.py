"""The real consumers of our report formats, for tests: the summary JSON Schema (HttpRunner v5's structs) plus
the invariants HttpRunner's own code keeps, both JUnit XSDs through lxml (Jenkins xUnit for the whole file,
Maven Surefire per ``<testsuite>``), and ``allure generate`` from tools/allure (project-local npm package)."""
from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
from lxml import etree

from stages.aggregator.writers.summary import SCHEMA_PATH

ROOT = Path(__file__).resolve().parents[4]
# the consumers' own schemas, read where they are kept (shared/ beside the checkout, as in CI), never copied in
XSD_DIR = next((d for d in (ROOT.parent / "shared" / "schemas", ROOT.parent.parent / "shared" / "schemas",
                            Path("/work/shared/schemas")) if (d / "jenkins-xunit-junit-10.xsd").is_file()),
               ROOT.parent / "shared" / "schemas")
ALLURE = ROOT / "tools" / "allure" / "node_modules" / ".bin" / "allure"


def _strict_int(checker: Any, value: Any) -> bool:
    """JSON Schema counts 6.0 as an integer, but Go's int64 refuses the JSON text ``6.0``: only real ints pass."""
    return isinstance(value, int) and not isinstance(value, bool)


_Strict = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _strict_int))


def summary_validator() -> Any:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return _Strict(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def summary_problems(doc: dict[str, Any]) -> list[str]:
    """Schema errors plus HttpRunner's invariants (summary.go): total == len(details), success/fail counts,
    root success == AND of details, case stat == its records, root teststeps == sum of the cases."""
    problems = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in summary_validator().iter_errors(doc)]
    if problems:
        return problems
    details, tc = doc["details"], doc["stat"]["testcases"]
    if tc["total"] != len(details):
        problems.append(f"stat.testcases.total {tc['total']} != len(details) {len(details)}")
    if tc["success"] != sum(d["success"] for d in details) or tc["fail"] != sum(not d["success"] for d in details):
        problems.append("stat.testcases success/fail do not count details")
    if doc["success"] and not all(d["success"] for d in details):
        problems.append("root success is true with a failed detail")
    steps = {"total": 0, "successes": 0, "failures": 0}
    for d in details:
        recs = d["records"]
        own = {"total": len(recs), "successes": sum(r["success"] for r in recs),
               "failures": sum(not r["success"] for r in recs)}
        if {k: d["stat"][k] for k in own} != own:
            problems.append(f"detail {d.get('case_id')}: stat {d['stat']} does not count its records")
        if d["success"] and not all(r["success"] for r in recs):
            problems.append(f"detail {d.get('case_id')}: success with a failed record")
        for k in steps:
            steps[k] += own[k]
    if {k: doc["stat"]["teststeps"][k] for k in steps} != steps:
        problems.append(f"stat.teststeps {doc['stat']['teststeps']} != sum of details {steps}")
    return problems


def junit_problems(path: Path) -> list[str]:
    """Validate a junit.xml with both consumers' schemas: xUnit's junit-10.xsd for the file, Surefire 3.0 for
    each ``<testsuite>`` (Surefire writes one suite per file)."""
    tree = etree.parse(str(path))
    xunit = etree.XMLSchema(etree.parse(str(XSD_DIR / "jenkins-xunit-junit-10.xsd")))
    surefire = etree.XMLSchema(etree.parse(str(XSD_DIR / "surefire-test-report-3.0.xsd")))
    problems = [] if xunit.validate(tree) else [f"xunit: {e.message} (line {e.line})" for e in xunit.error_log]
    for suite in tree.getroot().iter("testsuite"):
        doc = etree.ElementTree(copy.deepcopy(suite))
        if not surefire.validate(doc):
            problems += [f"surefire suite {suite.get('name')}: {e.message}" for e in surefire.error_log]
    return problems


def allure_generate(results: Path, out: Path) -> dict[str, Any]:
    """Run ``allure generate`` (Allure 2 on the machine's JRE) and return its widgets/summary.json."""
    env = dict(os.environ, JAVA_OPTS="-Xmx256m -XX:TieredStopAtLevel=1 -Xshare:auto")
    proc = subprocess.run([str(ALLURE), "generate", str(results), "-o", str(out), "--clean"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-2000:])
    return json.loads((out / "widgets" / "summary.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def allure_widget(out: Path, name: str) -> Any:
    """Another widget of a generated report (executors, categories, environment...)."""
    return json.loads((out / "widgets" / f"{name}.json").read_text(encoding="utf-8"))


def allure_expected(results: Path) -> dict[str, int]:
    """What Allure should count from the results dir: one test per historyId, its latest attempt's status."""
    latest: dict[str, dict[str, Any]] = {}
    for p in results.glob("*-result.json"):
        doc = json.loads(p.read_text(encoding="utf-8"))
        cur = latest.get(doc["historyId"])
        if cur is None or doc["start"] > cur["start"]:
            latest[doc["historyId"]] = doc
    counts = {k: 0 for k in ("failed", "broken", "skipped", "passed", "unknown")}
    for doc in latest.values():
        counts[doc["status"]] += 1
    counts["total"] = len(latest)
    return counts
