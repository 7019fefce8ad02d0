"""One task attempt as stages: prepare → agent → push the work in progress → verify and fix → publish.

An :class:`Attempt` lives for one ``execute_task`` activity call and carries what its stages share (the
checkout, the agent, the verify result, the notes); :class:`AttemptProgress` goes out in every heartbeat.

Crash-safe (a worker killed mid-attempt, a power loss):

- the agent's change is pushed as soon as it is committed (before verification), in a commit whose message
  ends with ``Otto-Attempt: <task>/<attempt>``; a retried activity that finds the task branch's head to be
  such a commit of *this* attempt skips the agent and continues with verification, so work already pushed is
  never applied twice (the agent's summary is kept in the artifact store beside it);
- every model call's usage is written to the artifact store as it happens and sent in a heartbeat (so in
  Temporal's history); a retried activity adds what the tries before it spent (the larger of the two
  records), so a crash never loses spend from the run's cost and budget;

Outages (GitHub, git's remote or the model down, the disk full) end the activity with the ``Outage`` failure,
carrying what it spent; the workflow waits and takes the attempt up again (``TaskInput.resumes``). Work a push
could not deliver is kept as a git bundle in the artifact store, and the next try pushes it instead of running
the agent again.
- the PR and the check run are looked up before they are created, so a retry updates the same ones.

Humans pushing to the branch: every push carries a lease on the head Otto last saw. When it is refused,
Otto fetches, rebases its own new commits onto the human's head and pushes with a lease on that head; on a
conflict the attempt ends with an error saying so. Nothing is ever forced over someone else's commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel
from temporalio import activity

from app import prompts
from app.activities.github import CheckConclusion, repo_client
from app.agent.loop import Agent, AgentResult, Transcript
from app.agent.tools import CommandTool, EditorTool
from app.artifacts import ArtifactStore, attempt_prefix, put_quietly
from app.contracts.io import AttemptProgress, LinkedMount, TaskInput, TaskResult
from app.domain.context import ContextPolicy
from app.domain.links import attempt_url
from app.domain.logs import tail
from app.domain.progress import Outcome, failure_signature, made_progress
from app.domain.redact import redact
from app.domain.render import plural, render_pr_body
from app.domain.repo_config import RepoConfig
from app.domain.run import AttemptRecord, TaskStatus
from app.domain.sanitize import quote_untrusted
from app.domain.terminal import plain_text
from app.domain.usage import BudgetExhausted, Usage
from app.github_auth import GitHubApp, GitIdentity
from app.llm import LLM, run_ref
from app.sandbox import Mounts, Sandbox
from app.sandbox.bwrap import WORKSPACE
from app.settings import Settings
from app.verify import VerifyPlan, VerifyResult, resolve_plan, run_setup, run_verify
from app.workspace import MergeConflict, PushRejected, RemoteUnavailable, Workspace, Worktree
from app.workspace.checkouts import SANDBOX_OBJECTS

LINKED_ROOT = "/otto/repos"  # where an attempt's sandbox sees the other repositories it may read

log = logging.getLogger("otto.attempt")

LOG_TAIL_BYTES = 3_000
LEARNING_CHARS = 600
PUSH_REBASES = 3  # a human pushing again and again while Otto rebases: give up after this many
TRAILER = "Otto-Attempt"


class HumanPushed(Exception):
    """Someone else's commits on the task branch conflict with Otto's; nothing was pushed or forced."""


class Stopped(Exception):
    """The run was stopped: nothing more is pushed."""


class WorkInProgress(BaseModel):
    """What the agent's pushed work needs for a retry to carry on from it (kept in the artifact store)."""

    sha: str
    summary: str


class Unpushed(BaseModel):
    """Work a push could not deliver (an outage): its commits are in ``unpushed.bundle`` beside this."""

    sha: str
    start_sha: str  # what the bundle's commits are on
    summary: str


@dataclass
class Services:
    """What an attempt uses (held by the task activities)."""

    settings: Settings
    app: GitHubApp
    llm: LLM
    workspace: Workspace
    sandbox: Sandbox
    store: ArtifactStore
    stop_requested: Callable[[str], asyncio.Future[bool]] | None = None

    def secrets(self) -> list[str]:
        return self.app.cached_tokens() + self.settings.secret_values()


def issue_ref(inp: TaskInput) -> str:
    """The issue as a PR or commit in the task's repository links it: ``#7``, or ``acme/web#7`` from another
    repository."""
    return f"{inp.issue_repo}#{inp.issue_number}" if inp.issue_repo else f"#{inp.issue_number}"


def attempt_trailer(inp: TaskInput) -> str:
    return f"{TRAILER}: {inp.task.id}/{inp.attempt}"


@dataclass
class Attempt:
    svc: Services
    inp: TaskInput
    artifacts: Path
    activity_attempt: int  # 1 for the first try of this task attempt, more after a crash
    progress: AttemptProgress
    token: str = ""
    identity: GitIdentity | None = None
    people_changes: list[str] = field(default_factory=list)  # commits people pushed to the task's branch
    conflicts: list[str] | None = None  # the base merged in: None not asked, else the conflicted paths
    linked: dict[str, Worktree] = field(default_factory=dict)  # other repositories' read-only checkouts
    mirror: Path | None = None
    remote_sha: str | None = None  # the task branch's head as Otto knows it
    worktree: Worktree | None = None
    agent: Agent | None = None
    result: AgentResult | None = None
    verified: VerifyResult | None = None
    rounds: int = 0
    notes: list[str] = field(default_factory=list)  # why the attempt stopped short (budget, limits)
    budget_spent: bool = False
    prior_usage: Usage = field(default_factory=Usage)  # what crashed tries of this attempt spent
    usage_seq: int = 0
    started: float = field(default_factory=time.monotonic)
    primed: list[str] | None = None  # setup commands that ran with network before the agent (see prime)
    heartbeat_spent: Usage | None = None  # what the last heartbeat of a crashed try said was spent

    @property
    def first_try(self) -> bool:
        """No try of this attempt ran before (no crash retry, no resumption after an outage)."""
        return self.activity_attempt == 1 and self.inp.resumes == 0

    @property
    def try_key(self) -> str:
        return f"r{self.inp.resumes}-{self.activity_attempt}"

    @property
    def prefix(self) -> str:
        return attempt_prefix(self.inp.run_id, self.inp.task.id, self.inp.attempt)

    # --- stage 1: the checkout ----------------------------------------------------------------------
    async def prepare(self) -> WorkInProgress | None:
        """The checkout, the agent; returns the work a crashed try of this attempt already pushed."""
        svc, inp, ws = self.svc, self.inp, self.svc.workspace
        await asyncio.to_thread(svc.sandbox.ensure_available)  # fail closed before touching anything
        self.token = await svc.app.installation_token(inp.repo.installation_id)
        self.identity = await svc.app.bot_identity(inp.repo.installation_id)
        self.prior_usage = await asyncio.to_thread(self._spent_before)
        self.mirror = await asyncio.to_thread(ws.sync_mirror, inp.repo.full_name, inp.clone_url, self.token)
        self.remote_sha = await asyncio.to_thread(ws.remote_branch_sha, self.mirror, inp.branch)
        resumed = await asyncio.to_thread(self._pushed_before)
        unpushed = await asyncio.to_thread(self._unpushed) if resumed is None else None
        if unpushed is not None:
            self.worktree = await asyncio.to_thread(self._restore, unpushed)
            await self.check_out_linked()
            self.agent = self._agent()
            return WorkInProgress(sha=unpushed.sha, summary=unpushed.summary)
        self.worktree = await asyncio.to_thread(
            ws.create_worktree,
            self.mirror,
            f"{inp.run_id}-{inp.task.id}-{inp.attempt}",
            inp.base_branch,
            [] if self.remote_sha else inp.dependency_branches,
            inp.branch if self.remote_sha else None,
            self.identity,
        )
        if self.remote_sha is not None:  # building on the branch: what people pushed to it, for the agent
            assert self.identity is not None
            self.people_changes = await asyncio.to_thread(
                ws.commits_by_others, self.mirror, inp.base_branch, self.remote_sha, self.identity.email
            )
            if inp.bring_in_base:  # its PR conflicts with the base: merge the base in, conflicts to resolve
                self.conflicts = await asyncio.to_thread(
                    ws.merge_in, self.worktree, inp.base_branch, self.identity
                )
        await self.check_out_linked()
        self.agent = self._agent()
        return resumed

    def _pushed_before(self) -> WorkInProgress | None:
        """This attempt's own commit at the branch's head (a crashed try pushed it), with its summary."""
        if self.remote_sha is None or self.mirror is None or self.first_try:
            return None
        message = self.svc.workspace.commit_message(self.mirror, self.remote_sha)
        if attempt_trailer(self.inp) not in message.splitlines():
            return None
        stored = self.svc.store.get_text(f"{self.prefix}/wip.json")
        wip = WorkInProgress.model_validate_json(stored) if stored else None
        return (
            wip
            if wip is not None and wip.sha == self.remote_sha
            else WorkInProgress(sha=self.remote_sha, summary="")
        )

    def _unpushed(self) -> Unpushed | None:
        """Work an earlier try could not push (an outage), when the branch does not have it yet."""
        if self.first_try:
            return None
        stored = self.svc.store.get_text(f"{self.prefix}/unpushed.json")
        if not stored:
            return None
        unpushed = Unpushed.model_validate_json(stored)
        if unpushed.sha == self.remote_sha or self.svc.store.get(f"{self.prefix}/unpushed.bundle") is None:
            return None
        if self.remote_sha is not None and self.remote_sha != unpushed.start_sha:
            return None  # the branch moved on since (a person pushed): start from it instead
        return unpushed

    def _restore(self, unpushed: Unpushed) -> Worktree:
        data = self.svc.store.get(f"{self.prefix}/unpushed.bundle")
        assert data is not None
        assert self.mirror is not None
        bundle = self.artifacts / "unpushed.bundle"
        bundle.write_bytes(data)
        try:
            return self.svc.workspace.restore(
                self.mirror,
                f"{self.inp.run_id}-{self.inp.task.id}-{self.inp.attempt}",
                bundle,
                unpushed.sha,
                self.inp.base_branch,
                unpushed.start_sha,
            )
        finally:
            bundle.unlink(missing_ok=True)

    def keep_unpushed(self) -> None:
        """A push could not get through: keep the commits (a bundle) for the try that will push them."""
        wt, result = self.worktree, self.result
        if wt is None or result is None:
            return
        bundle = self.artifacts / "unpushed.bundle"
        try:
            sha = self.svc.workspace.bundle(wt, bundle)
            self.svc.store.put(f"{self.prefix}/unpushed.bundle", bundle.read_bytes())
            unpushed = Unpushed(sha=sha, start_sha=wt.start_sha, summary=result.summary[:4000])
            self.svc.store.put_text(
                f"{self.prefix}/unpushed.json", redact(unpushed.model_dump_json(), self.svc.secrets())
            )
        except Exception:  # the next try runs the agent again: spend, not work, is what is lost
            log.warning("could not keep the unpushed work of %s", self.inp.task.id, exc_info=True)
        finally:
            bundle.unlink(missing_ok=True)

    def _spent_before(self) -> Usage:
        """What earlier tries of this attempt since its last resumption spent (an outage's resumption starts
        afresh: the workflow counted what the interrupted try spent from its failure)."""
        total = Usage()
        mine = f"{self.try_key}-"
        for info in self.svc.store.list(f"{self.prefix}/usage/"):
            name = info.key.split("/")[-1]
            if not name.startswith(f"r{self.inp.resumes}-") or name.startswith(mine):
                continue
            text = self.svc.store.get_text(info.key)
            if text:
                total = total + Usage.model_validate_json(text)
        beat = self.heartbeat_spent
        if beat is not None and (beat.calls, beat.cost_usd) > (total.calls, total.cost_usd):
            return beat  # the file of the last call did not make it (a full disk), its heartbeat did
        return total

    def _record_usage(self, usage: Usage) -> None:
        self.usage_seq += 1
        self.progress.spent = self.usage()
        with contextlib.suppress(RuntimeError):  # outside an activity (a test driving an Attempt)
            activity.heartbeat(self.progress.model_dump(mode="json"))
        key = f"{self.prefix}/usage/{self.try_key}-{self.usage_seq:05d}.json"
        put_quietly(self.svc.store, key, usage.model_dump_json())

    def mounts(self) -> Mounts:
        wt = self.worktree
        assert wt is not None
        objects = ((wt.objects, SANDBOX_OBJECTS),) if self.svc.sandbox.enabled else ()
        return Mounts(workdir=wt.path, home=wt.home, tmp=wt.tmp, ro_binds=objects + linked_binds(self.linked))

    async def check_out_linked(self) -> None:
        """The other repositories this attempt may read, each checked out from its own mirror (their files
        only reach the sandbox through :meth:`mounts`, read-only)."""
        inp = self.inp
        assert self.identity is not None
        prefix = f"{inp.run_id}-{inp.task.id}-{inp.attempt}"
        self.linked = await check_out_linked(
            self.svc.workspace, self.token, self.identity, prefix, inp.linked
        )

    def _agent(self) -> Agent:
        s, inp, sandbox = self.svc.settings, self.inp, self.svc.sandbox
        assert self.worktree is not None
        assert self.identity is not None
        return Agent(
            self.svc.llm,
            editor=EditorTool(
                self.worktree.path,
                output_limit=s.command_output_limit,
                alias=WORKSPACE if sandbox.enabled else None,
                owner=sandbox.owner,
            ),
            shell=CommandTool(
                sandbox,
                self.mounts(),
                s.command_timeout_s,
                s.command_output_limit,
                git_identity_env(self.identity),
            ),
            system=prompts.render(
                "agent_system",
                denied=", ".join(inp.config.paths_denied) or "(none)",
                workspace=WORKSPACE if sandbox.enabled else "the repository root",
            ),
            # a later attempt is a new conversation, told apart in logs and scripted scenarios
            task_id=inp.task.id if inp.attempt == 1 else f"{inp.task.id}.{inp.attempt}",
            run=run_ref(inp.issue_repo or inp.repo.full_name, inp.issue_number),
            model=inp.model,
            max_steps=s.agent_max_steps,
            transcript=Transcript(self.artifacts / "transcript.jsonl", self.svc.secrets()),
            on_step=lambda step: setattr(self.progress, "step", step),
            on_usage=self._record_usage,
            budget_usd=inp.budget_left_usd,
            max_tokens=s.agent_max_tokens,
            max_tokens_limit=s.agent_max_tokens_limit,
            context=ContextPolicy.for_model(
                inp.model,
                s.agent_context_threshold_tokens,
                s.agent_context_keep_tool_results,
                s.agent_max_tokens_limit,
            ),
        )

    def verify_plan(self) -> VerifyPlan:
        assert self.worktree is not None
        return resolve_plan(self.worktree.path, self.inp.config.setup, self.inp.config.verify)

    # --- stage 1b: setup with network, on files no agent wrote ----------------------------------------
    @property
    def setup_network(self) -> bool:
        return setup_network(self.svc.settings, self.inp.config)

    async def prime(self) -> None:
        """When setup may use the network: :func:`prime_setup` before the agent (see there). Setup never
        runs with network again in this attempt: the checks run on what the agent wrote."""
        if not self.setup_network:
            return
        assert self.mirror is not None
        assert self.worktree is not None
        assert self.identity is not None
        self.progress.stage = "setup (network)"
        inp = self.inp
        self.primed = await prime_setup(
            self.svc,
            mirror=self.mirror,
            worktree=self.worktree,
            identity=self.identity,
            base_branch=inp.base_branch,
            config=inp.config,
            name=f"{inp.run_id}-{inp.task.id}-{inp.attempt}-setup",
            artifacts=self.artifacts,
        )

    # --- stage 2: the agent, and its work pushed at once --------------------------------------------
    async def work(self) -> TaskResult | None:
        """Run the agent, commit and push its change; a result when the attempt ends here."""
        agent = self.agent
        assert agent is not None
        self.progress.stage = "agent"
        try:
            self.result = await agent.run(self.prompt())
        except BudgetExhausted as e:
            self._budget(f"stopped: the run's budget is spent ({e})")
            self.result = AgentResult(
                "The agent was stopped because the run's budget is spent.", agent.steps, "budget", agent.usage
            )
        new_sha = await self.commit("")
        if new_sha is None and self.remote_sha is None:
            note = self.result.note
            return self.ended(
                TaskStatus.ERROR,
                "; ".join(self.notes)
                or (f"{note}; " if note else "") + "the agent made no changes, so there is nothing to push",
                "made no change",
            )
        if new_sha is not None:
            self.progress.stage = "push (work in progress)"
            pushed = await self.push_or_keep()
            if isinstance(pushed, TaskResult):
                return pushed
            self.progress.wip_sha = pushed
            wip = WorkInProgress(sha=pushed, summary=self.result.summary[:4000])
            put_quietly(
                self.svc.store, f"{self.prefix}/wip.json", redact(wip.model_dump_json(), self.svc.secrets())
            )
        return None

    def resume(self, wip: WorkInProgress) -> None:
        """A crashed try of this attempt pushed the agent's work: carry on from verification."""
        self.result = AgentResult(wip.summary, 0, "resumed", Usage())
        self.progress.wip_sha = wip.sha

    # --- stage 3: the checks and fix rounds ------------------------------------------------------------
    async def verify_and_fix(self) -> None:
        agent, inp = self.agent, self.inp
        assert agent is not None
        assert self.result is not None
        plan = self.verify_plan()
        self.progress.stage = "verify"
        verified = await self.verify(plan)
        while not verified.passed and not self.budget_spent:
            if self.rounds >= inp.config.max_fix_rounds:
                if inp.config.max_fix_rounds:
                    self.notes.append(f"stopped after {plural(self.rounds, 'fix round')}: the limit")
                break  # `max_fix_rounds: 0`: no fix rounds asked for, nothing to note
            if agent.exhausted:
                why = agent.ended or "the agent's step limit"
                self.notes.append(f"stopped after {plural(self.rounds, 'fix round')}: {why}")
                break
            self.rounds += 1
            self.progress.stage, self.progress.fix_round = f"fix round {self.rounds}", self.rounds
            prompt = fix_prompt(verified, self.rounds, inp.config.max_fix_rounds)
            if not agent.messages:  # resumed: a new conversation needs the task too
                prompt = self.prompt() + "\n\n" + prompt
            try:
                self.result = await agent.run(prompt)
            except BudgetExhausted as e:
                self._budget(f"stopped in fix round {self.rounds}: the run's budget is spent ({e})")
                break
            await self.commit(f" (fix round {self.rounds})")
            again = await self.verify(plan)
            progressed = made_progress(outcome_of(verified), outcome_of(again))
            verified = again
            if not progressed and not again.passed:
                rounds = plural(self.rounds, "fix round")
                self.notes.append(f"stopped after {rounds}: the last one made no progress")
                break
        self.verified = verified

    async def verify(self, plan: VerifyPlan) -> VerifyResult:
        """The checks on the task's checkout, never with network (that would run the agent's code with it).
        After a primed setup only the verify commands run; otherwise setup runs first, offline."""
        s = self.svc.settings
        if self.primed is not None:
            plan = VerifyPlan(setup=[], verify=plan.verify)
        result: VerifyResult = await asyncio.to_thread(
            run_verify, self.svc.sandbox, self.mounts(), plan, s.verify_timeout_s, s.verify_log_limit
        )
        if self.primed:
            note = "(setup ran once before the agent, with network, on the base branch: "
            result.log = f"{note}{'; '.join(self.primed)}; its log is setup.log)\n" + result.log
        result.log = redact(result.log, self.svc.secrets())
        (self.artifacts / f"verify.{self.rounds}.log").write_text(result.log, encoding="utf-8")
        return result

    # --- stage 4: the branch, the PR, the check run ---------------------------------------------------------
    async def publish(self) -> TaskResult:
        svc, inp, ws = self.svc, self.inp, self.svc.workspace
        assert self.worktree is not None
        assert self.result is not None
        assert self.verified is not None
        self.write_reports()
        self.progress.stage = "push"
        head = await asyncio.to_thread(ws.head_sha, self.worktree)
        if head != self.remote_sha:  # fix rounds added commits (the agent's own were pushed already)
            pushed = await self.push_or_keep()
            if isinstance(pushed, TaskResult):
                return pushed
            if pushed != head:  # rebased onto a human's commits: check what is on the branch now
                self.verified = await self.verify(self.verify_plan())
            head = pushed
        pr_base = inp.pr_base or inp.base_branch
        files = [f.path for f in await asyncio.to_thread(ws.changed_files, self.worktree, pr_base)]
        diff = await asyncio.to_thread(ws.pr_diff, self.worktree, pr_base)
        (self.artifacts / "diff.patch").write_text(redact(diff, svc.secrets()), encoding="utf-8")
        link = attempt_url(svc.settings.public_url, inp.run_id, inp.task.id, inp.attempt)
        self.progress.stage = "pull request"
        verified = self.verified
        gh = await repo_client(svc.app, inp.repo)
        log_tail = tail(plain_text(verified.log), LOG_TAIL_BYTES)
        refused = [r.describe() for r in self.worktree.refused]
        body = render_pr_body(
            run_id=inp.run_id,
            issue_number=inp.issue_number,
            issue_ref=issue_ref(inp),
            task=inp.task,
            summary=self.result.summary,
            files=files,
            verify_passed=verified.passed,
            no_checks=verified.no_checks,
            failures=verified.failures,
            commands=verified.commands,
            log_tail=log_tail,
            attempt=inp.attempt,
            fix_rounds=self.rounds,
            refused=refused,
            attempt_url=link,
            history=[*inp.history, self.record(verified)],
            stacked_on=inp.stacked_on,
            elsewhere=inp.merges_after,
            base_branch=inp.base_branch,
            notes=note_text(self.notes, self.result.note),
        )
        title = f"[Otto {issue_ref(inp)}] {inp.task.title}"
        pr = await gh.upsert_draft_pr(
            head=inp.branch, base=pr_base, title=title, body=redact(body, svc.secrets())
        )
        conclusion: CheckConclusion = (
            "neutral" if verified.no_checks else ("success" if verified.passed else "failure")
        )
        note = "; ".join(self.notes)
        await gh.upsert_check_run(
            head_sha=head,
            conclusion=conclusion,
            title="Checks passed" if verified.passed else "Checks failed",
            summary=f"`{'`, `'.join(verified.commands) or 'no checks found'}`"
            + (f" — {verified.failures} failing" if verified.failures else "")
            + (f" — {note}" if note else ""),
            text=f"```\n{plain_text(verified.log)}\n```",
            details_url=link,
        )
        status = TaskStatus.PASSED if verified.passed else TaskStatus.FAILED
        return TaskResult(
            task_id=inp.task.id,
            status=status,
            summary=self.result.summary,
            budget_exhausted=self.budget_spent,
            error=note,
            fix_rounds=self.rounds,
            verify_passed=verified.passed,
            verify_log_tail=log_tail,
            failures=verified.failures,
            head_sha=head,
            pr_number=pr.number,
            pr_url=pr.url,
            files_changed=files,
            refused_changes=refused,
            usage=self.usage(),
            learning=learning(inp, status.value, self.result.summary),
        )

    # --- shared steps ------------------------------------------------------------------------------------
    def record(self, verified: VerifyResult) -> AttemptRecord:
        """This attempt's line in the PR's history (measured here; the run records its own the same way)."""
        return AttemptRecord(
            attempt=self.inp.attempt,
            trigger=self.inp.trigger,
            outcome="checks pass" if verified.passed else "checks fail",
            failures=verified.failures,
            duration_s=time.monotonic() - self.started,
            cost_usd=self.usage().cost_usd,
        )

    def usage(self) -> Usage:
        return self.prior_usage + (self.agent.usage if self.agent else Usage())

    def ended(self, status: TaskStatus, error: str, outcome: str) -> TaskResult:
        summary = self.result.summary if self.result else ""
        return TaskResult(
            task_id=self.inp.task.id,
            status=status,
            summary=summary,
            budget_exhausted=self.budget_spent,
            error=error,
            usage=self.usage(),
            learning=learning(self.inp, outcome, summary),
        )

    def _budget(self, note: str) -> None:
        self.budget_spent = True
        self.notes.append(note)

    def write_reports(self) -> None:
        assert self.result is not None
        (self.artifacts / "summary.md").write_text(
            redact(self.result.summary, self.svc.secrets()) + "\n", encoding="utf-8"
        )
        steps = self.agent.steps if self.agent else 0
        report = {**self.result.report(), "steps": steps}
        (self.artifacts / "agent.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")

    async def commit(self, suffix: str) -> str | None:
        inp = self.inp
        assert self.worktree is not None
        assert self.identity is not None
        title = inp.task.title if inp.attempt == 1 else f"Retry: {inp.task.title} (attempt {inp.attempt})"
        why = "" if inp.attempt == 1 else f"Attempt {inp.attempt} of this task; why: {inp.trigger}.\n\n"
        message = (
            f"{title}{suffix}\n\n{why}"
            f"Part of {issue_ref(inp)} (Otto task {inp.task.id}, attempt {inp.attempt}).\n\n"
            f"{attempt_trailer(inp)}"
        )
        return await asyncio.to_thread(
            self.svc.workspace.commit_all, self.worktree, message, self.identity, inp.config.paths_denied
        )

    async def push_or_keep(self) -> str | TaskResult:
        """:meth:`push`; when the remote does not answer, the work is kept for the next try first."""
        try:
            return await self.push()
        except RemoteUnavailable:
            await asyncio.to_thread(self.keep_unpushed)
            raise

    async def push(self) -> str | TaskResult:
        """Push HEAD with a lease on the head Otto last saw (None: the branch must not exist yet).

        Refused because someone else pushed: fetch, rebase the commits after the lease onto their head and
        push with a lease on that head (a few times at most). A conflict ends the attempt, nothing forced."""
        svc, inp, ws = self.svc, self.inp, self.svc.workspace
        assert self.worktree is not None
        assert self.mirror is not None
        assert self.identity is not None
        if svc.stop_requested is not None and await svc.stop_requested(inp.run_id):
            raise Stopped("the run was stopped; nothing more is pushed")
        lease = self.remote_sha
        upstream = lease or self.worktree.start_sha
        for _ in range(PUSH_REBASES):
            try:
                pushed = await asyncio.to_thread(
                    ws.push, self.worktree, inp.clone_url, self.token, inp.branch, lease
                )
                self.remote_sha = pushed
                return pushed
            except PushRejected:
                await asyncio.to_thread(ws.sync_mirror, inp.repo.full_name, inp.clone_url, self.token)
                theirs = await asyncio.to_thread(ws.remote_branch_sha, self.mirror, inp.branch)
                if theirs is None or theirs == lease:
                    raise  # refused for another reason (e.g. a protected branch)
                try:
                    await asyncio.to_thread(
                        ws.rebase_onto, self.worktree, inp.branch, upstream, self.identity
                    )
                except MergeConflict:
                    return self.ended(
                        TaskStatus.ERROR,
                        f"someone else pushed to {inp.branch} (now at {theirs[:7]}) while this attempt ran, "
                        "and Otto's commits conflict with theirs; nothing was forced and Otto's work was not "
                        "pushed",
                        "not pushed: a human pushed",
                    )
                upstream = lease = theirs
        return self.ended(
            TaskStatus.ERROR,
            f"{inp.branch} kept moving while Otto rebased onto it; nothing was forced and Otto's work was "
            "not pushed",
            "not pushed: a human pushed",
        )

    def prompt(self) -> str:
        inp = self.inp
        plan = self.verify_plan()
        return prompts.render(
            "agent_user",
            task=inp.task,
            issue_number=inp.issue_number,
            repo=inp.issue_repo or inp.repo.full_name,
            changes=inp.repo.full_name if inp.issue_repo else "",
            issue_title=quote_untrusted("issue title", inp.issue_title, limit=500),
            dependencies=inp.task.depends_on,
            learnings=quote_untrusted("learnings", inp.learnings) if inp.learnings else "",
            guidance=quote_untrusted("guidance", inp.guidance) if inp.guidance else "",
            base_merged=self.conflicts is not None,
            linked=[
                f"{LINKED_ROOT}/{m.repo} (`{m.repo}` at `{m.branch}`)"
                for m in inp.linked
                if m.repo in self.linked
            ],
            conflicts=self.conflicts or [],
            base_branch=inp.base_branch,
            people_changes=(
                quote_untrusted("commits people pushed", "\n".join(self.people_changes))
                if self.people_changes
                else ""
            ),
            route_context=quote_untrusted("pilot note", inp.route_context) if inp.route_context else "",
            attempt=inp.attempt,
            verify_commands=plan.setup + plan.verify,
        )

    async def release(self) -> None:
        if self.worktree is not None:
            await asyncio.to_thread(self.svc.workspace.remove_worktree, self.worktree)
        for other in self.linked.values():
            await asyncio.to_thread(self.svc.workspace.remove_worktree, other)


async def check_out_linked(
    ws: Workspace, token: str, identity: GitIdentity, prefix: str, links: Sequence[LinkedMount]
) -> dict[str, Worktree]:
    """A checkout of each other repository (from its own mirror), to be bound read-only into a sandbox."""
    out: dict[str, Worktree] = {}
    for link in links:
        mirror = await asyncio.to_thread(ws.sync_mirror, link.repo, link.clone_url, token)
        out[link.repo] = await asyncio.to_thread(
            ws.create_worktree, mirror, f"{prefix}-{link.repo}", link.branch, [], None, identity
        )
    return out


def linked_binds(linked: dict[str, Worktree]) -> tuple[tuple[Path, str], ...]:
    return tuple((other.path, f"{LINKED_ROOT}/{repo}") for repo, other in linked.items())


def setup_network(settings: Settings, config: RepoConfig) -> bool:
    """Whether the repository's setup may use the network (then only on files no agent or person wrote)."""
    return settings.sandbox_setup_network == "always" or (
        settings.sandbox_setup_network == "repo" and config.network == "setup"
    )


async def prime_setup(
    svc: Services,
    *,
    mirror: Path,
    worktree: Worktree,
    identity: GitIdentity,
    base_branch: str,
    config: RepoConfig,
    name: str,
    artifacts: Path,
) -> list[str] | None:
    """Run the setup commands once, with network, in a checkout of the base branch's head that nobody but
    the repository wrote (not the task's: a retry's or a dependent's holds agent code, a pushed head a
    person's), with the task's ``$HOME`` (so what they install is there for the checks), then move what
    they made that the repository ignores (``node_modules``, ``.venv``) into ``worktree``. Returns the
    commands that ran and passed (None: setup did not run, or failed: the checks run it again offline)."""
    ws = svc.workspace
    pristine = await asyncio.to_thread(ws.create_worktree, mirror, name, base_branch, [], None, identity)
    try:
        plan = resolve_plan(pristine.path, config.setup, config.verify)
        if not plan.setup:
            return None
        before = {e.name for e in pristine.path.iterdir()}
        objects = ((pristine.objects, SANDBOX_OBJECTS),) if svc.sandbox.enabled else ()
        mounts = Mounts(pristine.path, worktree.home, worktree.tmp, ro_binds=objects)
        passed, setup_log = await asyncio.to_thread(
            run_setup,
            svc.sandbox,
            mounts,
            plan.setup,
            svc.settings.verify_timeout_s,
            svc.settings.verify_log_limit,
            network=True,
        )
        (artifacts / "setup.log").write_text(redact(setup_log, svc.secrets()), encoding="utf-8")
        if not passed:
            return None
        made = sorted({e.name for e in pristine.path.iterdir()} - before)
        await asyncio.to_thread(ws.move_ignored, pristine, worktree, made)
        return list(plan.setup)
    finally:
        await asyncio.to_thread(ws.remove_worktree, pristine)


async def run_attempt(attempt: Attempt) -> TaskResult:
    """The stages in order; the checkout is given back however it ends."""
    try:
        wip = await attempt.prepare()
        await attempt.prime()
        if wip is not None:
            attempt.resume(wip)
            if wip.sha != attempt.remote_sha:  # kept by a try an outage interrupted: deliver it now
                attempt.progress.stage = "push (work in progress)"
                pushed = await attempt.push_or_keep()
                if isinstance(pushed, TaskResult):
                    return pushed
        else:
            ended = await attempt.work()
            if ended is not None:
                return ended
        await attempt.verify_and_fix()
        return await attempt.publish()
    finally:
        await attempt.release()


def note_text(notes: list[str], agent_note: str) -> str:
    """Why the attempt stopped short, for the PR (budget, limits, the agent's refusal)."""
    parts = [*notes, *([agent_note] if agent_note else [])]
    return ("**Note:** " + "; ".join(parts) + ".") if parts else ""


def outcome_of(v: VerifyResult) -> Outcome:
    return Outcome(passed=v.passed, failures=v.failures, signature=failure_signature(v.log))


def fix_prompt(v: VerifyResult, round_no: int, limit: int) -> str:
    failing = f"{v.failures} failing" if v.failures is not None else "failed"
    return (
        f"The repository's checks failed after your change ({failing}; fix round {round_no} of {limit}). "
        "The end of their output:\n\n"
        + quote_untrusted("verify log", tail(v.log, LOG_TAIL_BYTES * 2))
        + "\n\nFind the cause, fix it, run the checks again, and answer with a short summary of the fix."
    )


def learning(inp: TaskInput, outcome: str, summary: str) -> str:
    text = " ".join(summary.split())
    if len(text) > LEARNING_CHARS:
        text = text[:LEARNING_CHARS] + "…"
    return f"- {inp.task.id} ({inp.task.title}; {outcome}): {text}"


def git_identity_env(identity: GitIdentity) -> dict[str, str]:
    """Commits the agent makes itself are the bot's too."""
    return {
        "GIT_AUTHOR_NAME": identity.name,
        "GIT_AUTHOR_EMAIL": identity.email,
        "GIT_COMMITTER_NAME": identity.name,
        "GIT_COMMITTER_EMAIL": identity.email,
    }
