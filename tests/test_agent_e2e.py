"""The agent's stop reasons through a whole run: what the PR and the attempt's artifacts say."""

from __future__ import annotations

import json
from collections.abc import Callable

from app.domain.run import RunPhase, TaskStatus
from tests.e2e import Otto, Repo, label_new_issue, settled, wait_for_state
from tests.test_failures_e2e import create, pr_of, scenario, task

REFUSAL = "I will not continue with this request."


async def test_a_refusal_ends_the_task_and_its_pr_says_so(otto: Otto, repo: Callable[..., Repo]) -> None:
    agent = {"t1": [create("a.py", "A = 1\n"), {"text": REFUSAL, "stop_reason": "refusal"}]}
    otto.world.model.load(scenario([task("t1", "Add module a")], agent))
    r = repo()
    number, rid = label_new_issue(otto.sim, r, title="Add a", body="Please add a.")
    state = await wait_for_state(otto.client, rid, number, settled)
    assert state.phase == RunPhase.WAITING_REVIEW, state.reason

    t1 = state.record("t1")
    assert t1.status == TaskStatus.PASSED  # the work before the refusal is kept, verified and pushed
    body = pr_of(otto, r, t1.branch).body
    assert "declined to continue this task" in body
    assert REFUSAL in body
    assert len(otto.world.model.requests_for("agent", "t1")) == 2

    attempt = otto.settings.artifacts_dir / state.run_id.replace("/", "-") / "t1" / "attempt-1"
    report = json.loads((attempt / "agent.json").read_text())
    assert report["stop_reason"] == "refusal"
    assert REFUSAL in report["note"]
    assert report["context_events"] == []
    assert report["usage"]["calls"] == 2
    kinds = [json.loads(line)["kind"] for line in (attempt / "transcript.jsonl").read_text().splitlines()]
    assert kinds[-1] == "ended"
