"""Model calls without tools: classify the issue, plan the tasks."""

from __future__ import annotations

from anthropic.types import MessageParam
from pydantic import BaseModel, ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from app import prompts
from app.domain.jsonreply import NotJSON, extract_json_object
from app.domain.plan import Plan
from app.domain.run import Classification, ClassifyResult, IssueContext, PlanResult, RepoRef
from app.domain.sanitize import quote_untrusted
from app.domain.usage import Usage
from app.llm import LLM, ModelError

FILES_SHOWN = 300


class ModelInput(BaseModel):
    repo: RepoRef
    issue_number: int
    context: IssueContext
    model: str
    max_tasks: int


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
    )


def _fail(message: str, kind: str) -> ApplicationError:
    return ApplicationError(message, type=kind, non_retryable=True)


class ModelActivities:
    def __init__(self, llm: LLM) -> None:
        self.llm = llm

    @activity.defn
    async def classify(self, inp: ModelInput) -> ClassifyResult:
        messages: list[MessageParam] = [{"role": "user", "content": issue_message(inp)}]
        try:
            reply = await self.llm.create(
                role="classify",
                system=prompts.render("classify_system"),
                messages=messages,
                model=inp.model,
                max_tokens=2048,
            )
        except ModelError as e:
            raise _fail(f"Classifying the issue failed: {e}.", "ModelError") from e
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
                    role="plan", system=system, messages=messages, model=inp.model, max_tokens=8192
                )
            except ModelError as e:
                raise _fail(f"Planning failed: {e}.", "ModelError") from e
            usage = usage + reply.usage
            try:
                plan = Plan.model_validate(extract_json_object(reply.text))
                if len(plan.tasks) > inp.max_tasks:
                    raise ValueError(
                        f"the plan has {len(plan.tasks)} tasks; at most {inp.max_tasks} are allowed"
                    )
                return PlanResult(plan_summary=plan.summary, tasks=plan.tasks, usage=usage)
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


def _short(e: Exception, limit: int = 600) -> str:
    if isinstance(e, ValidationError):
        text = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'plan'}: {err['msg']}" for err in e.errors()[:5]
        )
    else:
        text = str(e)
    return text[:limit]
