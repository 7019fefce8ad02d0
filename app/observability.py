"""Observability: structured (JSON) logs with per-delivery / per-run context, and Prometheus metrics.

Logs. ``configure_logging`` installs one handler on the root logger. Every line is a JSON object
(``timestamp``, ``level``, ``logger``, ``message`` and, when known, ``delivery_id``, ``run_id``,
``task_id``, ``event``, ``activity``), or a human-readable line for ``otto demo``. The context fields travel
in ``contextvars``: the web app's middleware sets ``delivery_id``/``event`` from GitHub's headers for the
request, and the Temporal worker interceptor sets ``run_id`` (the workflow id), ``task_id`` and
``activity`` around every activity, so activity code logs with context without knowing about it. Every
formatted message and traceback passes through ``redact`` with the secrets registered at configure time.

Metrics. Module-level metric objects on prometheus_client's default registry, created once per process,
so any number of web apps and workers in one process share them. ``GET /metrics`` on the web app exposes
the registry (in ``otto serve`` that includes the worker's); a separate worker process exposes its own
with ``OTTO_METRICS_PORT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json as jsonlib
import logging
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import IO, Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio import activity
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from app.domain.redact import redact
from app.domain.run import RunState, TaskStatus
from app.domain.usage import Usage

log = logging.getLogger("otto.activity")

# --- context ---------------------------------------------------------------------------------------

CONTEXT_FIELDS = ("delivery_id", "run_id", "task_id", "event", "activity")
_MAX_FIELD = 200  # header values are attacker-controlled before the signature check: keep them short

_context: dict[str, ContextVar[str | None]] = {
    name: ContextVar(f"otto_{name}", default=None) for name in CONTEXT_FIELDS
}


def current_context() -> dict[str, str]:
    """The context fields set in the current task/thread (only those that are known)."""
    out: dict[str, str] = {}
    for name, var in _context.items():
        value = var.get()
        if value:
            out[name] = value
    return out


@contextlib.contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Set context fields (``delivery_id``, ``run_id``, ``task_id``, ``event``, ``activity``) for a block."""
    tokens: list[tuple[ContextVar[str | None], Token[str | None]]] = []
    for name, value in fields.items():
        var = _context.get(name)
        if var is None:
            raise ValueError(f"unknown log context field {name!r}")
        if value is None:
            continue
        tokens.append((var, var.set(str(value)[:_MAX_FIELD])))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


_delivery_var = _context["delivery_id"]
_event_var = _context["event"]
DeliveryContext = tuple[Token[str | None], Token[str | None]]


def set_delivery_context(delivery_id: str | None, event: str | None) -> DeliveryContext:
    """``log_context(delivery_id=…, event=…)`` for the webhook hot path: no generator, no loop. The values
    must already be short and well-formed; undo with :func:`reset_delivery_context`."""
    return _delivery_var.set(delivery_id), _event_var.set(event)


def reset_delivery_context(tokens: DeliveryContext) -> None:
    _event_var.reset(tokens[1])
    _delivery_var.reset(tokens[0])


class LogContextMiddleware:
    """ASGI middleware: a webhook request's log lines (access log included) carry its delivery id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: dict[bytes, bytes] = dict(scope.get("headers") or [])
        delivery = headers.get(b"x-github-delivery")
        event = headers.get(b"x-github-event")
        with log_context(
            delivery_id=delivery.decode("latin-1") if delivery else None,
            event=event.decode("latin-1") if event else None,
        ):
            await self.app(scope, receive, send)


# --- log formatting --------------------------------------------------------------------------------

_secrets: tuple[str, ...] = ()
_secrets_lock = threading.Lock()


def register_secrets(values: Iterable[str]) -> None:
    """Secret values redacted from every log line from now on (in addition to token-shaped strings)."""
    global _secrets
    with _secrets_lock:  # longest first, so a secret containing another is replaced whole
        _secrets = tuple(sorted({*_secrets, *(v for v in values if v)}, key=len, reverse=True))


def _redact(text: str) -> str:
    return redact(text, _secrets)


def _from_temporal_extra(record: logging.LogRecord) -> dict[str, str]:
    """Context from temporalio's own loggers (``workflow.logger`` / ``activity.logger`` extras)."""
    out: dict[str, str] = {}
    for attr in ("temporal_activity", "temporal_workflow"):
        extra = getattr(record, attr, None)
        if not isinstance(extra, dict):
            continue
        workflow_id = extra.get("workflow_id")
        if isinstance(workflow_id, str):
            out.update(_workflow_fields(workflow_id))
        if isinstance(extra.get("activity_type"), str):
            out.setdefault("activity", extra["activity_type"])
    return out


class ContextFilter(logging.Filter):
    """Stamps the context fields onto each record as it is emitted (in the emitting task's context)."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = {**_from_temporal_extra(record), **current_context()}
        for name in CONTEXT_FIELDS:
            if getattr(record, name, None) is None and name in fields:
                setattr(record, name, fields[name])
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line; message and traceback redacted."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": _redact(record.getMessage()),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = _redact(str(value))
        if record.exc_info:
            entry["exception"] = _redact(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exception"] = _redact(record.exc_text)
        if record.stack_info:
            entry["stack"] = _redact(self.formatStack(record.stack_info))
        return jsonlib.dumps(entry, ensure_ascii=False, default=str)


class HumanFormatter(logging.Formatter):
    """The classic ``time level logger: message`` line (plus known context), redacted."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ctx = " ".join(
            f"{name}={getattr(record, name)}"
            for name in CONTEXT_FIELDS
            if getattr(record, name, None) is not None
        )
        return _redact(f"{line} [{ctx}]" if ctx else line)


def log_handler(json: bool = True, stream: IO[str] | None = None) -> logging.Handler:
    """A stream handler with Otto's context filter and (JSON or human) redacting formatter."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if json else HumanFormatter())
    return handler


def configure_logging(
    level: str | int = "info",
    json: bool = True,
    secrets: Iterable[str] = (),
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Replace the root logger's handlers with Otto's one handler; register ``secrets`` for redaction."""
    register_secrets(secrets)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    handler = log_handler(json, stream)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    logging.captureWarnings(True)
    return handler


# --- metrics ---------------------------------------------------------------------------------------

WEBHOOKS = Counter(
    "otto_webhooks",
    "Webhook deliveries answered, by GitHub event and HTTP status of the answer",
    ["event", "outcome"],
)
SIGNATURE_FAILURES = Counter(
    "otto_webhook_signature_failures",
    "Webhook deliveries refused for a missing or wrong X-Hub-Signature-256",
    ["reason"],
)
RUNS = Counter(
    "otto_runs",
    "Runs that entered each phase (counted once per run and phase, however often the status is published)",
    ["phase"],
)
TASKS = Counter(
    "otto_tasks",
    "Task outcomes (counted once per task attempt and outcome)",
    ["outcome"],
)
MODEL_CALLS = Counter("otto_model_calls", "Model calls answered", ["role", "model"])
MODEL_TOKENS = Counter(
    "otto_model_tokens",
    "Model tokens by kind (input, output, cache_read, cache_write)",
    ["kind", "role", "model"],
)
MODEL_COST = Counter("otto_model_cost_usd", "Model cost in USD at list prices", ["role", "model"])
ACTIVITY_SECONDS = Histogram(
    "otto_activity_duration_seconds",
    "Temporal activity execution time (one attempt), by activity and outcome",
    ["activity", "outcome"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600),
)

_TASK_OUTCOMES = frozenset(TaskStatus) - {TaskStatus.PENDING, TaskStatus.RUNNING}


def metrics_exposition() -> tuple[bytes, str]:
    """The process's metrics in Prometheus' text format, and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


_webhook_counters: dict[tuple[str, str], Any] = {}


def webhook_answered(
    event: str | None, outcome: int | str, verified: bool, known_events: Collection[str]
) -> None:
    """Count an answered delivery (``outcome``: the HTTP status, or ``disconnected``). Before the signature
    is verified the event header is anyone's text, so only events Otto handles are used as a label then
    (bounded label values)."""
    if not event:
        label = "missing"
    elif verified or event in known_events:
        label = event[:64]
    else:
        label = "other"
    key = (label, str(outcome))
    counter = _webhook_counters.get(key)
    if counter is None:  # labels() takes a lock and builds a key each time: look each pair up once
        counter = _webhook_counters[key] = WEBHOOKS.labels(event=label, outcome=key[1])
    counter.inc()


def signature_failed(header: str | bytes | None) -> None:
    SIGNATURE_FAILURES.labels(reason="missing" if not header else "invalid").inc()


def model_call(role: str, model: str, usage: Usage) -> None:
    """Count one answered model call's tokens and cost (called by ``LLM.create``)."""
    MODEL_CALLS.labels(role=role, model=model).inc()
    for kind, value in (
        ("input", usage.input_tokens),
        ("output", usage.output_tokens),
        ("cache_read", usage.cache_read_input_tokens),
        ("cache_write", usage.cache_creation_input_tokens),
    ):
        if value:
            MODEL_TOKENS.labels(kind=kind, role=role, model=model).inc(value)
    if usage.cost_usd > 0:
        MODEL_COST.labels(role=role, model=model).inc(usage.cost_usd)
    logging.getLogger("otto.llm").debug(
        "model call %s (%s): %d tokens, $%.4f", role, model, usage.total_tokens, usage.cost_usd
    )


class _RunTracker:
    """What this process already counted per run, so that repeated publishes (every state change,
    activity retries) count each phase once per run and each task outcome once per attempt.
    Bounded: the least recently published runs are forgotten first."""

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._runs: OrderedDict[str, tuple[set[str], set[tuple[str, int, str]]]] = OrderedDict()
        self._lock = threading.Lock()

    def observe(self, state: RunState) -> tuple[list[str], list[str]]:
        """New (phases, task outcomes) in ``state`` that were not counted for its run yet."""
        with self._lock:
            seen = self._runs.get(state.run_id)
            if seen is None:
                seen = (set(), set())
                self._runs[state.run_id] = seen
                while len(self._runs) > self.capacity:
                    self._runs.popitem(last=False)
            else:
                self._runs.move_to_end(state.run_id)
            phases, outcomes = seen
            new_phases: list[str] = []
            if state.phase.value not in phases:
                phases.add(state.phase.value)
                new_phases.append(state.phase.value)
            new_outcomes: list[str] = []
            for record in state.tasks:
                if record.status not in _TASK_OUTCOMES:
                    continue
                key = (record.task.id, record.attempts, record.status.value)
                if key not in outcomes:
                    outcomes.add(key)
                    new_outcomes.append(record.status.value)
            return new_phases, new_outcomes


_tracker = _RunTracker()


def run_published(state: RunState) -> None:
    """Feed run and task metrics from a published ``RunState`` (called by ``publish_status``)."""
    phases, outcomes = _tracker.observe(state)
    for phase in phases:
        RUNS.labels(phase=phase).inc()
    for outcome in outcomes:
        TASKS.labels(outcome=outcome).inc()


# --- Temporal worker interceptor -------------------------------------------------------------------


def _workflow_fields(workflow_id: str) -> dict[str, str]:
    """A delivery workflow's id names the delivery; any other workflow's id is the run id."""
    if workflow_id.startswith("delivery/"):
        return {"delivery_id": workflow_id.removeprefix("delivery/")}
    return {"run_id": workflow_id}


def _task_id(args: Sequence[Any]) -> str | None:
    """The task an activity works on: ``task.id`` (a task attempt) or a ``task_id`` field of its input."""
    if not args:
        return None
    first = args[0]
    task = getattr(first, "task", None)
    task_id = getattr(task, "id", None) if task is not None else None
    if task_id is None:
        task_id = getattr(first, "task_id", None)
    return task_id if isinstance(task_id, str) else None


class _ActivityInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        fields: dict[str, str | None] = {"activity": info.activity_type, "task_id": _task_id(input.args)}
        if info.workflow_id:
            fields.update(_workflow_fields(info.workflow_id))
        outcome = "error"
        start = time.perf_counter()
        with log_context(**fields):
            try:
                result = await self.next.execute_activity(input)
                outcome = "ok"
                return result
            except asyncio.CancelledError:
                outcome = "cancelled"
                raise
            finally:
                elapsed = time.perf_counter() - start
                ACTIVITY_SECONDS.labels(activity=info.activity_type, outcome=outcome).observe(elapsed)
                log.debug(
                    "activity %s attempt %d: %s in %.3fs", info.activity_type, info.attempt, outcome, elapsed
                )


class ObservabilityInterceptor(Interceptor):
    """Log context (run, task, activity) and duration metrics around every activity, in any worker."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ActivityInbound(next)
