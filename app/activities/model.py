"""Model calls without tools: classify the issue, plan the tasks."""

from __future__ import annotations

import asyncio
import json

from anthropic.types import MessageParam
from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from app import prompts
from app.artifacts import ArtifactStore, put_quietly, run_key
from app.contracts.io import (
    ClassifyResult,
    ModelInput,
    PilotInput,
    PilotResult,
    PlanResult,
    ReplanInput,
)
from app.domain.jsonreply import NotJSON, extract_json_object
from app.domain.logs import tail
from app.domain.outages import Service
from app.domain.pilot import InvalidDecision, PilotDecision, validate_decision
from app.domain.plan import Plan, PlannedTask
from app.domain.run import Classification, TaskRecord
from app.domain.sanitize import quote_untrusted
from app.domain.usage import BudgetExhausted, Usage
from app.llm import LLM, ModelError, ModelUnavailable, run_ref
from app.outages import Outage

FILES_SHOWN = 300


# bounds on what the pilot and the replanner read
SUMMARY_CHARS = 800
LOG_TAIL_CHARS = 2_500
LEARNINGS_CHARS = 4_000
DECISIONS_KEPT = 3


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f" […{len(text) - limit} more]"


def run_report(tasks: list[TaskRecord], failed: list[str], learnings: list[str]) -> str:
    """The run's recorded results as bounded text: plan, states, summaries, log tails of failed tasks."""
    parts = []
    for r in tasks:
        t = r.task
        lines = [
            f"## {t.id}: {t.title}",
            f"status: {r.status.value}; attempts: {r.attempts}; fix rounds: {r.fix_rounds}"
            + (f"; failing tests: {r.failures}" if r.failures is not None else "")
            + (f"; depends on: {', '.join(t.depends_on)}" if t.depends_on else ""),
            f"intent: {_clip(t.intent, SUMMARY_CHARS)}",
        ]
        if t.acceptance:
            lines.append("acceptance: " + "; ".join(t.acceptance))
        if r.note:
            lines.append(f"note: {_clip(r.note, SUMMARY_CHARS)}")
        if r.summary:
            lines.append(quote_untrusted(f"summary of {t.id}", _clip(r.summary, SUMMARY_CHARS)))
        if t.id in failed and r.verify_log_tail:
            lines.append(
                quote_untrusted(f"verify log tail of {t.id}", tail(r.verify_log_tail, LOG_TAIL_CHARS))
            )
        parts.append("\n".join(lines))
    learned = "\n".join(learnings)
    if learned:
        parts.append("## Learnings so far\n" + quote_untrusted("learnings", tail(learned, LEARNINGS_CHARS)))
    return "\n\n".join(parts)


def check_repositories(plan: Plan, own: str, writable: list[str]) -> None:
    """Each task changes the issue's repository or one this run may change; the names normalised."""
    allowed = {w.lower(): w for w in writable}
    for t in plan.tasks:
        if t.repo is None or t.repo.lower() == own.lower():
            t.repo = None
        elif t.repo.lower() in allowed:
            t.repo = allowed[t.repo.lower()]
        else:
            may = ", ".join([own, *writable])
            raise ValueError(
                f"task {t.id} names repository {t.repo}, which this run may not change ({may} only)"
            )


def issue_message(inp: ModelInput) -> str:
    ctx = inp.context
    files = ctx.repo_files[:FILES_SHOWN]
    return prompts.render(
        "issue_user",
        repo=inp.repo.full_name,
        base_branch=ctx.base_branch,
        issue_number=inp.issue_number,
        author=ctx.author,
        title=quote_untrusted("issue title", ctx.title, limit=500),
        body=quote_untrusted("issue body", ctx.body),
        files_shown=len(files),
        files_total=ctx.repo_files_total,
        files=quote_untrusted("file list", "\n".join(files)),
        writable=ctx.writable,
        linked=[
            (
                name,
                min(len(names), FILES_SHOWN),
                len(names),
                quote_untrusted(f"file list of {name}", "\n".join(names[:FILES_SHOWN])),
            )
            for name, names in sorted(ctx.linked_files.items())
        ],
        previous_plan="\n".join(f"- {t.id}: {t.title} — {t.intent}" for t in inp.previous_plan),
        feedback=quote_untrusted("maintainer feedback", inp.feedback) if inp.feedback else "",
    )


def _fail(message: str, kind: str) -> ApplicationError:
    return ApplicationError(message, type=kind, non_retryable=True)


def _model_failed(e: ModelError, message: str, kind: str, spent: Usage | None = None) -> ApplicationError:
    """A failed model call: an outage (waited out by the workflow, carrying what was spent) or a failure."""
    if isinstance(e, ModelUnavailable):
        return Outage(Service.MODEL, e.detail, message).failure(spent, retryable=False)
    return _fail(message, kind)


def _over_budget(e: BudgetExhausted, spent: Usage | None = None) -> ApplicationError:
    return ApplicationError(
        f"The run's budget is spent: {e}.",
        (spent or Usage()).model_dump(mode="json"),
        type="BudgetExhausted",
        non_retryable=True,
    )


class ModelActivities:
    def __init__(self, llm: LLM, store: ArtifactStore | None = None) -> None:
        self.llm = llm
        self.store = store

    async def _record(self, name: str, text: str) -> None:
        """Keep it with the run's artifacts (``plan.json``, ``replan-N.json``, ``pilot-N.json``)."""
        if self.store is None:
            return
        key = f"{run_key(activity.info().workflow_id or 'run')}/{name}"
        await asyncio.to_thread(put_quietly, self.store, key, text)

    @activity.defn
    async def classify(self, inp: ModelInput) -> ClassifyResult:
        messages: list[MessageParam] = [{"role": "user", "content": issue_message(inp)}]
        try:
            reply = await self.llm.create(
                role="classify",
                run=run_ref(inp.repo.full_name, inp.issue_number),
                system=prompts.render("classify_system"),
                messages=messages,
                model=inp.model,
                max_tokens=2048,
                budget_left_usd=inp.budget_left_usd,
            )
        except BudgetExhausted as e:
            raise _over_budget(e) from e
        except ModelError as e:
            raise _model_failed(e, f"Classifying the issue failed: {e}.", "ModelError") from e
        try:
            classification = Classification.model_validate(extract_json_object(reply.text))
        except (NotJSON, ValidationError) as e:
            raise _fail(
                f"The model's classification could not be read ({_short(e)}).", "InvalidModelOutput"
            ) from e
        return ClassifyResult(classification=classification, usage=reply.usage)

    @activity.defn
    async def plan(self, inp: ModelInput) -> PlanResult:
        """One planning call; an invalid plan is sent back once with the validation error, then it fails."""
        system = prompts.render("plan_system", max_tasks=inp.max_tasks)
        messages: list[MessageParam] = [{"role": "user", "content": issue_message(inp)}]
        usage = Usage()
        problem = ""
        for attempt in (1, 2):
            try:
                reply = await self.llm.create(
                    role="plan",
                    run=run_ref(inp.repo.full_name, inp.issue_number),
                    system=system,
                    messages=messages,
                    model=inp.model,
                    max_tokens=8192,
                    budget_left_usd=_left(inp.budget_left_usd, usage),
                )
            except BudgetExhausted as e:
                raise _over_budget(e, usage) from e
            except ModelError as e:
                raise _model_failed(e, f"Planning failed: {e}.", "ModelError", usage) from e
            usage = usage + reply.usage
            try:
                plan = Plan.model_validate(extract_json_object(reply.text))
                check_repositories(plan, inp.repo.full_name, inp.context.writable)
                if len(plan.tasks) > inp.max_tasks:
                    raise ValueError(
                        f"the plan has {len(plan.tasks)} tasks; at most {inp.max_tasks} are allowed"
                    )
                result = PlanResult(plan_summary=plan.summary, tasks=plan.tasks, usage=usage)
                await self._record("plan.json", result.model_dump_json(indent=2))
                return result
            except (NotJSON, ValidationError, ValueError) as e:
                problem = _short(e)
            if attempt == 1:
                messages = [
                    *messages,
                    {"role": "assistant", "content": reply.text or "(empty)"},
                    {
                        "role": "user",
                        "content": f"That plan is invalid: {problem}\n"
                        "Answer again with the corrected JSON object only.",
                    },
                ]
        raise ApplicationError(
            f"The model returned an invalid plan twice; the last problem: {problem}.",
            usage.model_dump(mode="json"),
            type="InvalidPlan",
            non_retryable=True,
        )

    @activity.defn
    async def pilot(self, inp: PilotInput) -> PilotResult:
        """One call, no tools, bounded context; the decision is validated whole or the call fails."""
        message = _pilot_message(inp)
        call = activity.info().activity_id
        name = f"pilot-{int(call):05d}.json" if call.isdigit() else f"pilot-{run_key(call)}.json"
        record: dict[str, object] = {"failed": inp.failed, "pending": inp.pending, "input": message}
        try:
            reply = await self.llm.create(
                role="pilot",
                run=run_ref(inp.model_input.repo.full_name, inp.model_input.issue_number),
                system=prompts.render("pilot_system", max_retries=inp.max_retries),
                messages=[{"role": "user", "content": message}],
                model=inp.model_input.model,
                max_tokens=4096,
                budget_left_usd=inp.model_input.budget_left_usd,
            )
        except BudgetExhausted as e:
            raise _over_budget(e) from e
        except ModelError as e:
            raise _model_failed(e, f"The gate pilot's model call failed: {e}", PILOT_FAILED) from e
        try:
            decision = PilotDecision.model_validate(extract_json_object(reply.text))
            validate_decision(
                decision,
                failed=inp.failed,
                pending=inp.pending,
                depends_on={r.task.id: r.task.depends_on for r in inp.tasks},
                retries_used=inp.retries_used,
                max_retries=inp.max_retries,
            )
        except (NotJSON, ValidationError, InvalidDecision) as e:
            record.update(answer=reply.text, problem=_short(e))
            await self._record(name, json.dumps(record, indent=2))
            raise ApplicationError(
                f"The gate pilot's decision was unusable ({_short(e)})",
                reply.usage.model_dump(mode="json"),
                type=PILOT_FAILED,
                non_retryable=True,
            ) from e
        record.update(answer=reply.text, decision=decision.model_dump(mode="json"))
        await self._record(name, json.dumps(record, indent=2))
        return PilotResult(decision=decision, usage=reply.usage)

    @activity.defn
    async def replan(self, inp: ReplanInput) -> PlanResult:
        """New tasks for the remaining work; ids must not clash, dependencies must resolve, no cycles."""
        kept = [r.task for r in inp.tasks if r.task.id not in inp.replaced]
        existing = ", ".join(r.task.id for r in inp.tasks)
        mi = inp.model_input
        system = prompts.render("replan_system", max_tasks=mi.max_tasks, existing=existing)
        message = (
            issue_message(mi)
            + f"\n\nWhy replan: {inp.reason}\n"
            + f"Tasks to replace: {', '.join(inp.replaced)}\n\n"
            + run_report(inp.tasks, inp.failed, inp.learnings)
        )
        try:
            reply = await self.llm.create(
                role="replan",
                run=run_ref(mi.repo.full_name, mi.issue_number),
                system=system,
                messages=[{"role": "user", "content": message}],
                model=mi.model,
                budget_left_usd=mi.budget_left_usd,
            )
        except BudgetExhausted as e:
            raise _over_budget(e) from e
        except ModelError as e:
            raise _model_failed(e, f"Replanning failed: {e}.", "ModelError") from e
        try:
            data = extract_json_object(reply.text)
            new = [PlannedTask.model_validate(t) for t in data.get("tasks") or []]
            clash = sorted({t.id for t in new} & {r.task.id for r in inp.tasks})
            if clash:
                raise ValueError(f"new task ids repeat existing ones: {', '.join(clash)}")
            if len(new) > mi.max_tasks:
                raise ValueError(f"{len(new)} new tasks; at most {mi.max_tasks} are allowed")
            if new:
                Plan(tasks=[*kept, *new])  # dependencies resolve, no cycles
        except (NotJSON, ValidationError, ValueError) as e:
            raise ApplicationError(
                f"The new plan was invalid ({_short(e)})",
                reply.usage.model_dump(mode="json"),
                type="InvalidPlan",
                non_retryable=True,
            ) from e
        result = PlanResult(plan_summary=str(data.get("summary") or ""), tasks=new, usage=reply.usage)
        await self._record(
            f"replan-{activity.info().attempt}-{len(inp.tasks)}.json", result.model_dump_json(indent=2)
        )
        return result


PILOT_FAILED = "PilotFailed"


def _pilot_message(inp: PilotInput) -> str:
    earlier = [d.model_dump_json() for d in inp.decisions[-DECISIONS_KEPT:]]
    return (
        f"Plan: {inp.plan_summary}\n\n{run_report(inp.tasks, inp.failed, inp.learnings)}\n\n"
        f"Failed tasks to decide on: {', '.join(inp.failed)}\n"
        f"Pending tasks: {', '.join(inp.pending) or 'none'}\n"
        f"Pilot retries used: {inp.retries_used or 'none'} (at most {inp.max_retries} per task)\n"
        + ("Earlier decisions in this run:\n" + "\n".join(earlier) if earlier else "")
    )


def _left(budget: float | None, spent: Usage) -> float | None:
    return None if budget is None else budget - spent.cost_usd


def _short(e: Exception, limit: int = 600) -> str:
    if isinstance(e, ValidationError):
        text = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'plan'}: {err['msg']}" for err in e.errors()[:5]
        )
    else:
        text = str(e)
    return text[:limit]
