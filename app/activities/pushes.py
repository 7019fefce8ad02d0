"""Otto is the CI for its own branches: a head a person pushed to a task branch gets the repository's checks
in the sandbox (setup's network only on the base branch's files, as for an attempt), its own `otto/verify`
check run, and its result back to the run — which then says the truth of that head and merges only a head
it verified green."""

from __future__ import annotations

import asyncio
import time

from app.activities.attempt import (
    LOG_TAIL_BYTES,
    Services,
    check_out_linked,
    linked_binds,
    prime_setup,
    setup_network,
)
from app.activities.github import CheckConclusion, repo_client
from app.artifacts import mirrored, run_key
from app.contracts.io import AttemptProgress, VerifyHeadInput, VerifyHeadResult
from app.domain.links import run_url
from app.domain.logs import tail
from app.domain.redact import redact
from app.domain.render import restate_checks
from app.domain.terminal import plain_text
from app.sandbox import Mounts
from app.sandbox.proc import command_scope
from app.verify import VerifyPlan, VerifyResult, resolve_plan, run_verify
from app.workspace import Worktree
from app.workspace.checkouts import SANDBOX_OBJECTS


async def verify_pushed_head(svc: Services, inp: VerifyHeadInput, try_no: int) -> VerifyHeadResult:
    """The checks on ``inp.sha`` while it is still the branch's head, and its check run. Heartbeats and
    cancellation are the caller's (``TaskActivities.verify_head``)."""
    s, ws = svc.settings, svc.workspace
    await asyncio.to_thread(svc.sandbox.ensure_available)  # fail closed before touching anything
    token = await svc.app.installation_token(inp.repo.installation_id)
    identity = await svc.app.bot_identity(inp.repo.installation_id)
    mirror = await asyncio.to_thread(ws.sync_mirror, inp.repo.full_name, inp.clone_url, token)
    head = await asyncio.to_thread(ws.remote_branch_sha, mirror, inp.branch)
    if head != inp.sha:
        return VerifyHeadResult(sha=head or inp.sha, moved=True)
    prefix = f"{run_key(inp.run_id)}/pushes/{inp.sha[:12]}"
    scratch = s.scratch_dir / f"{run_key(prefix)}-{try_no}-{int(time.time())}"
    name = f"{inp.run_id}-{inp.task_id}-push-{inp.sha[:12]}"
    async with mirrored(svc.store, scratch, prefix, hydrate=False, every_s=s.artifact_sync_s) as artifacts:
        worktree = await asyncio.to_thread(
            ws.create_worktree, mirror, name, inp.base_branch, [], inp.branch, identity
        )
        linked: dict[str, Worktree] = {}
        try:
            linked = await check_out_linked(ws, token, identity, name, inp.linked)
            with command_scope() as commands:
                try:
                    primed = None
                    if setup_network(s, inp.config):
                        primed = await prime_setup(
                            svc,
                            mirror=mirror,
                            worktree=worktree,
                            identity=identity,
                            base_branch=inp.base_branch,
                            config=inp.config,
                            name=f"{name}-setup",
                            artifacts=artifacts,
                        )
                    plan = resolve_plan(worktree.path, inp.config.setup, inp.config.verify)
                    if primed is not None:
                        plan = VerifyPlan(setup=[], verify=plan.verify)
                    objects = ((worktree.objects, SANDBOX_OBJECTS),) if svc.sandbox.enabled else ()
                    binds = objects + linked_binds(linked)  # never for setup's networked step
                    mounts = Mounts(worktree.path, worktree.home, worktree.tmp, ro_binds=binds)
                    result: VerifyResult = await asyncio.to_thread(
                        run_verify, svc.sandbox, mounts, plan, s.verify_timeout_s, s.verify_log_limit
                    )
                except asyncio.CancelledError:
                    commands.cancel()  # the run was stopped: the command running now ends at once
                    raise
        finally:
            for other in [worktree, *linked.values()]:
                await asyncio.to_thread(ws.remove_worktree, other)
        log = redact(result.log, svc.secrets())
        (artifacts / "verify.log").write_text(log, encoding="utf-8")
    conclusion: CheckConclusion = (
        "neutral" if result.no_checks else ("success" if result.passed else "failure")
    )
    failing = f" — {result.failures} failing" if result.failures else ""
    gh = await repo_client(svc.app, inp.repo)
    await gh.upsert_check_run(
        head_sha=inp.sha,
        conclusion=conclusion,
        title="Checks passed" if result.passed else "Checks failed",
        summary=f"`{'`, `'.join(result.commands) or 'no checks found'}` on {inp.sha[:7]}, "
        + (inp.recheck if inp.recheck else f"pushed by @{inp.pusher}")
        + failing,
        text=f"```\n{plain_text(log)}\n```",
        details_url=run_url(s.public_url, inp.run_id),
    )
    log_tail = tail(plain_text(log), LOG_TAIL_BYTES)
    if inp.recheck:  # Otto's own head checked again: the check run and the status say so, the body stays
        return VerifyHeadResult(
            sha=inp.sha,
            passed=result.passed,
            no_checks=result.no_checks,
            failures=result.failures,
            log_tail=log_tail,
        )
    await gh.restate_pull(
        inp.pr_number,
        lambda body: redact(
            restate_checks(
                body,
                sha=inp.sha,
                pusher=inp.pusher,
                passed=result.passed,
                no_checks=result.no_checks,
                failures=result.failures,
                commands=result.commands,
                log_tail=log_tail,
            ),
            svc.secrets(),
        ),
    )
    return VerifyHeadResult(
        sha=inp.sha,
        passed=result.passed,
        no_checks=result.no_checks,
        failures=result.failures,
        log_tail=log_tail,
    )


def progress_of(inp: VerifyHeadInput) -> AttemptProgress:
    return AttemptProgress(task=inp.task_id, attempt=0, stage=f"verify {inp.sha[:7]}")
