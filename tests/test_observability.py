"""Observability: JSON log lines with delivery/run/task context, redaction, Prometheus metrics, UI link."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app import observability
from app.domain.plan import PlannedTask
from app.domain.render import render_status
from app.domain.run import RepoRef, RunPhase, RunState, TaskRecord, TaskStatus
from app.intake import sign
from tests.e2e import Otto, Repo, demo_scenario, settled, status_comment, wait_for_state

# --- helpers -----------------------------------------------------------------------------------------


class Capture(logging.Handler):
    """Formats each record with Otto's JSON formatter (after its context filter) and keeps the lines."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.addFilter(observability.ContextFilter())
        self.setFormatter(observability.JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def entries(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in list(self.lines)]


@pytest.fixture
def captured() -> Iterator[Capture]:
    handler = Capture()
    root = logging.getLogger()
    otto_logger = logging.getLogger("otto")
    old_level = otto_logger.level
    otto_logger.setLevel(logging.DEBUG)
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        otto_logger.setLevel(old_level)


async def scrape(otto: Otto) -> str:
    async with httpx.AsyncClient() as http:
        resp = await http.get(f"{otto.server.url}/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    return resp.text


def value(text: str, sample: str, **labels: str) -> float:
    """Sum of the samples named ``sample`` whose labels include ``labels``."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def signed_headers(secret: str, body: bytes, event: str, delivery: str) -> dict[str, str]:
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": sign(secret, body),
        "Content-Type": "application/json",
    }


# --- logs --------------------------------------------------------------------------------------------


def test_json_lines_carry_context_and_never_secrets() -> None:
    secret = "whsec-" + uuid.uuid4().hex
    pem = "-----BEGIN PRIVATE KEY-----\nMIIEv" + uuid.uuid4().hex + "\n-----END PRIVATE KEY-----"
    stream = io.StringIO()
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    try:
        observability.configure_logging("debug", json=True, secrets=[secret, pem], stream=stream)
        log = logging.getLogger("otto.test")
        with observability.log_context(run_id="otto/1/2", task_id="t1", activity="execute_task"):
            log.warning("oops, the webhook secret is %s and a token ghs_%s", secret, "A" * 36)
            try:
                raise RuntimeError(f"failed with key {pem}")
            except RuntimeError:
                log.exception("with a traceback")
        log.info("outside any context")
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in saved_handlers:
            root.addHandler(h)
        root.setLevel(saved_level)

    # the root logger hears every thread: a late webhook from an earlier test may log meanwhile
    lines = [line for line in stream.getvalue().splitlines() if json.loads(line)["logger"] == "otto.test"]
    assert len(lines) == 3
    first, second, third = (json.loads(line) for line in lines)
    assert {"timestamp", "level", "logger", "message"} <= first.keys()
    assert first["level"] == "WARNING"
    assert first["logger"] == "otto.test"
    assert (first["run_id"], first["task_id"], first["activity"]) == ("otto/1/2", "t1", "execute_task")
    assert "delivery_id" not in first
    assert first["message"].count("[REDACTED]") == 2
    assert "[REDACTED]" in second["exception"]
    assert "RuntimeError" in second["exception"]
    assert "run_id" not in third
    assert "task_id" not in third
    everything = stream.getvalue()
    assert secret not in everything
    assert "MIIEv" not in everything
    assert "ghs_AAAA" not in everything


def test_human_lines_for_the_demo_are_redacted_too() -> None:
    secret = "s3cret-" + uuid.uuid4().hex
    observability.register_secrets([secret])
    stream = io.StringIO()
    handler = observability.log_handler(json=False, stream=stream)
    log = logging.getLogger("otto.test.human")
    log.addHandler(handler)
    try:
        with observability.log_context(delivery_id="d-1"):
            log.warning("secret=%s", secret)
    finally:
        log.removeHandler(handler)
    line = stream.getvalue()
    assert "WARNING otto.test.human: secret=[REDACTED]" in line
    assert "delivery_id=d-1" in line
    assert secret not in line


async def test_webhook_lines_and_counters(otto: Otto, captured: Capture) -> None:
    secret = otto.settings.webhook_secret.get_secret_value()
    url = f"{otto.server.url}/webhooks"
    before = await scrape(otto)

    delivery = f"obs-{uuid.uuid4()}"
    body = b'{"zen": "Keep it logically awesome.", "hook_id": 1}'
    async with httpx.AsyncClient() as http:
        ok = await http.post(url, content=body, headers=signed_headers(secret, body, "ping", delivery))
        bad = await http.post(
            url, content=body, headers=signed_headers("wrong", body, "issues", f"obs-bad-{uuid.uuid4()}")
        )
        missing_headers = signed_headers(secret, body, "issues", f"obs-missing-{uuid.uuid4()}")
        del missing_headers["X-Hub-Signature-256"]
        missing = await http.post(url, content=body, headers=missing_headers)
        unknown = await http.post(
            url, content=body, headers=signed_headers("wrong", body, "made-up-event", "x")
        )
    assert ok.status_code == 202
    assert (bad.status_code, missing.status_code, unknown.status_code) == (401, 401, 401)
    after = await scrape(otto)

    def delta(sample: str, **labels: str) -> float:
        return value(after, sample, **labels) - value(before, sample, **labels)

    assert delta("otto_webhooks_total", event="ping", outcome="202") == 1
    assert delta("otto_webhooks_total", event="issues", outcome="401") == 2
    # an unverified event header is not trusted as a label value
    assert delta("otto_webhooks_total", event="made-up-event") == 0
    assert delta("otto_webhooks_total", event="other", outcome="401") == 1
    assert delta("otto_webhook_signature_failures_total", reason="invalid") == 2
    assert delta("otto_webhook_signature_failures_total", reason="missing") == 1

    entries = captured.entries()
    mine = [e for e in entries if e.get("delivery_id") == delivery]
    assert mine, entries
    line = next(e for e in mine if e["logger"] == "otto.server")
    # an ignored delivery is a debug line (no per-request INFO logging on the hot path)
    assert line["event"] == "ping"
    assert line["level"] == "DEBUG"
    assert "202" in line["message"]
    assert {"timestamp", "level", "logger", "message"} <= line.keys()
    assert all(secret not in raw for raw in captured.lines)


# --- a real run ------------------------------------------------------------------------------------


async def test_a_run_logs_with_run_and_task_context_and_feeds_the_metrics(
    otto: Otto, repo: Callable[..., Repo], captured: Capture
) -> None:
    otto.world.model.load(demo_scenario())
    r = repo()
    number = otto.sim.create_issue(
        r.owner, r.name, "Add a shout mode", "A `shout(name)` function.", r.maintainer
    )
    rid = otto.sim.repo(r.owner, r.name).id
    before = await scrape(otto)

    delivery = otto.sim.add_label(r.owner, r.name, number, "otto", r.maintainer)
    assert delivery.status_code == 202
    state = await wait_for_state(otto.client, rid, number, settled)
    assert state.phase == RunPhase.WAITING_REVIEW, state.reason
    await status_comment(otto, r, number, "waiting for your review")  # the last publish has landed
    after = await scrape(otto)
    run_id = f"otto/{rid}/{number}"

    entries = captured.entries()
    # the webhook's line names its delivery; the delivery workflow's activities carry it too
    assert any(e.get("delivery_id") == delivery.id and e["logger"] == "otto.server" for e in entries)
    assert any(
        e.get("delivery_id") == delivery.id and e.get("activity") == "start_or_signal_run" for e in entries
    ), [e for e in entries if e.get("activity")]
    # a task attempt's lines (the interceptor's, and the model layer's inside it) name run and task
    attempts = [e for e in entries if e.get("activity") == "execute_task" and e.get("run_id") == run_id]
    assert {e.get("task_id") for e in attempts} >= {"t1", "t2"}
    model_lines = [e for e in attempts if e["logger"] == "otto.llm"]
    assert {e.get("task_id") for e in model_lines} >= {"t1", "t2"}, attempts
    assert any(e.get("activity") == "plan" and e.get("run_id") == run_id for e in entries)
    # nothing secret in any line
    secrets = otto.settings.secret_values()
    assert all(s not in raw for raw in captured.lines for s in secrets)

    def delta(sample: str, **labels: str) -> float:
        return value(after, sample, **labels) - value(before, sample, **labels)

    for kind in ("input", "output"):
        assert delta("otto_model_tokens_total", kind=kind) > 0, kind
    assert delta("otto_model_tokens_total", kind="input", role="plan") > 0
    assert delta("otto_model_cost_usd_total") > 0
    assert delta("otto_model_calls_total", role="agent") >= 2
    assert delta("otto_runs_total", phase="planning") >= 1
    assert delta("otto_runs_total", phase="waiting_review") >= 1
    assert delta("otto_tasks_total", outcome="passed") >= 2
    assert delta("otto_activity_duration_seconds_count", activity="execute_task", outcome="ok") >= 2
    assert delta("otto_activity_duration_seconds_count", activity="publish_status") >= 4


# --- run and task counting -------------------------------------------------------------------------


def _sample(name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_phases_and_task_outcomes_count_once_however_often_published() -> None:
    repo = RepoRef(installation_id=1, owner="o", name="r", repo_id=1)
    state = RunState(run_id=f"otto/test/{uuid.uuid4()}", repo=repo, issue_number=1)
    task = PlannedTask(id="t1", title="One", intent="do it")
    phases = ("starting", "planning", "running", "waiting_review", "done")
    outcomes = ("passed", "failed", "merged")
    before = {p: _sample("otto_runs_total", phase=p) for p in phases}
    before_tasks = {o: _sample("otto_tasks_total", outcome=o) for o in outcomes}

    def publish(times: int = 3) -> None:
        for _ in range(times):  # every state change is published, and an activity may be retried
            observability.run_published(state.model_copy(deep=True))

    publish()
    state.phase = RunPhase.PLANNING
    publish()
    state.phase = RunPhase.RUNNING
    state.tasks = [TaskRecord(task=task, batch=0, branch="b", status=TaskStatus.RUNNING, attempts=1)]
    publish()
    state.tasks[0].status = TaskStatus.FAILED
    publish()
    state.tasks[0].status, state.tasks[0].attempts = TaskStatus.RUNNING, 2  # a retry
    publish()
    state.tasks[0].status = TaskStatus.PASSED
    publish()
    state.phase = RunPhase.WAITING_REVIEW
    publish()
    state.phase = RunPhase.RUNNING  # a change request sends it back, then it waits again
    publish()
    state.phase = RunPhase.WAITING_REVIEW
    publish()
    state.tasks[0].status = TaskStatus.MERGED
    state.phase = RunPhase.DONE
    publish(5)

    for p in phases:
        assert _sample("otto_runs_total", phase=p) - before[p] == 1, p
    for o in outcomes:
        assert _sample("otto_tasks_total", outcome=o) - before_tasks[o] == 1, o


# --- Temporal Web UI link ------------------------------------------------------------------------


def test_status_comment_links_the_run_in_temporal_web_ui() -> None:
    repo = RepoRef(installation_id=1, owner="o", name="r", repo_id=9)
    url = "https://temporal.example.com/namespaces/default/workflows/otto/9/7"
    with_link = render_status(
        RunState(run_id="otto/9/7", repo=repo, issue_number=7, temporal_ui_url=url), "otto"
    )
    without = render_status(RunState(run_id="otto/9/7", repo=repo, issue_number=7), "otto")
    assert f"[workflow]({url})" in with_link
    assert "[workflow](" not in without
