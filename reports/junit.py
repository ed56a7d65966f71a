"""junit.xml: one testcase per criterion, so CI systems show each criterion's verdict and evidence."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from reports.verdict import FAIL, INCONCLUSIVE, NA, brief


def _message(criterion: dict[str, Any]) -> str:
    return (
        f"{criterion.get('verdict')}: value {brief(criterion.get('value'))}, "
        f"threshold {brief(criterion.get('threshold'))}: {criterion.get('evidence') or ''}"
    )


def _regressed_cases(suite: ET.Element, classname: str, criterion: dict[str, Any]) -> int:
    """One failing testcase per regressed measurement of a criterion that lists ``metrics`` (REGRESSION),
    added to ``suite``; returns how many."""
    regressed = [m for m in criterion.get("metrics") or [] if isinstance(m, dict) and m.get("regressed")]
    for metric in regressed:
        case = ET.SubElement(suite, "testcase", classname=classname, name=f"{criterion.get('id')} {metric.get('name')}",
                             time="0")  # fmt: skip
        message = (
            f"{metric.get('label')}: baseline {brief(metric.get('baseline'))} {metric.get('unit')}, current "
            f"{brief(metric.get('current'))}, change {brief(metric.get('change_pct'))}% worse (limit "
            f"{brief(metric.get('limit_pct'))}%), noise band ±{brief(metric.get('band'))}"
        )
        failure = ET.SubElement(case, "failure", message=message, type="regression")
        failure.text = message
    return len(regressed)


def junit_xml(document: dict[str, Any]) -> bytes:
    """A <testsuites> document: fail -> <failure>, inconclusive and n/a -> <skipped> with the reason."""
    suites = ET.Element("testsuites", name="lqharness")
    totals = {"tests": 0, "failures": 0, "skipped": 0}
    for scenario in document.get("scenarios", []):
        name = str(scenario.get("name"))
        criteria = scenario.get("criteria", [])
        suite = ET.SubElement(suites, "testsuite", name=name)
        counts = {"tests": len(criteria), "failures": 0, "skipped": 0}
        for criterion in criteria:
            case = ET.SubElement(
                suite, "testcase", classname=name, name=f"{criterion.get('id')} {criterion.get('title', '')}".strip(),
                time="0",
            )  # fmt: skip
            verdict = criterion.get("verdict")
            if verdict == FAIL:
                counts["failures"] += 1
                failure = ET.SubElement(case, "failure", message=_message(criterion), type="criterion-failed")
                failure.text = str(criterion.get("evidence") or "")
            elif verdict in (INCONCLUSIVE, NA):
                counts["skipped"] += 1
                ET.SubElement(case, "skipped", message=_message(criterion))
            out = ET.SubElement(case, "system-out")
            out.text = _message(criterion)
            regressed = _regressed_cases(suite, name, criterion)
            counts["tests"] += regressed
            counts["failures"] += regressed
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
        suite.set("errors", "0")
        suite.set("time", "0")
    for key, value in totals.items():
        suites.set(key, str(value))
    suites.set("errors", "0")
    ET.indent(suites)
    return ET.tostring(suites, encoding="utf-8", xml_declaration=True)
