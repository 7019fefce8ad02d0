"""Pure logic for failing tasks: pilot decision validation, fix-round progress, comment commands."""

from __future__ import annotations

import pytest

from app.domain.commands import parse_command
from app.domain.pilot import InvalidDecision, PilotDecision, dependents_of, validate_decision
from app.domain.progress import Outcome, failure_signature, made_progress

DEPS = {"a": [], "b": [], "c": ["b"], "d": ["c"], "e": ["a"]}


def check(raw: dict[str, object], retries: dict[str, int] | None = None) -> PilotDecision:
    return validate_decision(
        PilotDecision.model_validate(raw),
        failed=["b"],
        pending=["c", "d", "e"],
        depends_on=DEPS,
        retries_used=retries or {},
        max_retries=1,
    )


def test_a_valid_decision_passes_whole() -> None:
    d = check(
        {
            "tasks": [
                {"task_id": "b", "analysis": "import error", "action": "retry", "strategy": "fix import"}
            ],
            "route_context": {"c": "b's helper moved"},
            "reorder": ["e", "c", "d"],
            "summary": "retry b",
        }
    )
    b = d.decision("b")
    assert b is not None
    assert b.action == "retry"


@pytest.mark.parametrize(
    ("raw", "retries", "problem"),
    [
        (
            {"tasks": [{"task_id": "zz", "action": "skip"}, {"task_id": "b", "action": "skip"}]},
            {},
            "not one of",
        ),
        ({"tasks": []}, {}, "no decision for failed task(s): b"),
        ({"tasks": [{"task_id": "b", "action": "retry"}]}, {"b": 1}, "already retried 1"),
        ({"tasks": [{"task_id": "b", "action": "skip"}], "reorder": ["d", "c"]}, {}, "before its dependency"),
        ({"tasks": [{"task_id": "b", "action": "skip"}], "reorder": ["a"]}, {}, "not pending"),
        (
            {"tasks": [{"task_id": "b", "action": "skip"}], "route_context": {"q": "x"}},
            {},
            "not a pending task",
        ),
        (
            {"tasks": [{"task_id": "b", "action": "skip"}, {"task_id": "b", "action": "retry"}]},
            {},
            "more than one",
        ),
    ],
)
def test_invalid_decisions_are_rejected_with_the_reason(
    raw: dict[str, object], retries: dict[str, int], problem: str
) -> None:
    with pytest.raises(InvalidDecision, match=problem.replace("(", r"\(").replace(")", r"\)")):
        check(raw, retries)


def test_dependents_cascade_transitively() -> None:
    assert dependents_of("b", DEPS) == ["c", "d"]
    assert dependents_of("d", DEPS) == []


def test_progress_is_fewer_failures_or_a_different_failure() -> None:
    log3 = "FAILED tests/test_a.py::test_x - assert 1 == 2\n== 3 failed in 0.12s =="
    log2 = "FAILED tests/test_a.py::test_x - assert 1 == 2\n== 2 failed in 0.40s =="
    same_again = "FAILED tests/test_a.py::test_x - assert 1 == 2\n== 3 failed in 0.98s =="
    other = "FAILED tests/test_b.py::test_y - KeyError\n== 3 failed in 0.10s =="
    o3 = Outcome(passed=False, failures=3, signature=failure_signature(log3))
    assert made_progress(o3, Outcome(passed=False, failures=2, signature=failure_signature(log2)))
    assert not made_progress(o3, Outcome(passed=False, failures=3, signature=failure_signature(same_again)))
    assert made_progress(o3, Outcome(passed=False, failures=3, signature=failure_signature(other)))
    assert not made_progress(o3, Outcome(passed=False, failures=4, signature=failure_signature(other)))
    assert made_progress(o3, Outcome(passed=True, failures=0, signature=""))
    # no count known (e.g. a build error): judged on the failure itself
    none1 = Outcome(passed=False, failures=None, signature=failure_signature("error: cannot find module x"))
    none2 = Outcome(passed=False, failures=None, signature=failure_signature("error: cannot find module x"))
    assert not made_progress(none1, none2)


@pytest.mark.parametrize(
    ("body", "name", "text"),
    [
        ("/otto retry", "retry", ""),
        ("/otto retry use the helper in utils.py", "retry", "use the helper in utils.py"),
        (
            "Thanks!\n/otto retry\nuse the helper\nand keep it small",
            "retry",
            "use the helper\nand keep it small",
        ),
        ("/otto stop", "stop", ""),
        ("/OTTO Status", "status", ""),
        ("/otto", "help", ""),
        ("/otto frobnicate now", "unknown", "now"),
    ],
)
def test_commands_are_parsed(body: str, name: str, text: str) -> None:
    cmd = parse_command(body)
    assert cmd is not None
    assert cmd.name == name
    assert cmd.text == text


@pytest.mark.parametrize(
    "body",
    ["please /otto retry", "> /otto retry", "```\n/otto retry\n```", "/ottomatic", "no command here"],
)
def test_not_commands(body: str) -> None:
    assert parse_command(body) is None
