"""GitHub's 5xx answers and rate limits, through the real githubkit client against the simulator (HTTP),
and the workflow side: a long wait is a durable Temporal timer (time-skipping test server)."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    import pytest
    from githubkit import AppAuthStrategy, GitHub, TokenAuthStrategy
    from githubkit.exception import RequestFailed
    from pydantic import BaseModel, SecretStr
    from temporalio.client import WorkflowFailureError
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.exceptions import ActivityError, ApplicationError
    from temporalio.testing import WorkflowEnvironment
    from temporalio.worker import Worker

    from app.activities.github import GitHubActivities
    from app.contracts.activities import LOAD_ISSUE
    from app.contracts.io import LoadIssueInput
    from app.dev.simulator import CallRecord, Fault, Simulator
    from app.domain.run import RepoRef
    from app.github_auth import GitHubApp
    from app.github_retry import RATE_LIMITED, GitHubRetry, RateLimited, durable_rate_limits
    from app.settings import Settings
    from app.workflows.calls import github, rate_limit_wait
    from tests.conftest_sim import APP_ID, OWNER, REPO, World, sim_servers_fixture, world_fixture  # noqa: F401

REPO_PATH = f"/repos/{OWNER}/{REPO}"
HOUR = 3600
# the wait is measured from the answer's `Date` header: one-second resolution, and the server refreshes it
# on a tick of its own (it lags a busy machine's clock by a second or two)
DATE_SLACK = 5


def logged(sim: Simulator, path: str, count: int) -> list[CallRecord]:
    """The calls to ``path`` once ``count`` are in the log (it is written just after each answer)."""
    deadline = time.monotonic() + 5
    while True:
        calls = [c for c in sim.calls if c.path == path]
        if len(calls) >= count or time.monotonic() > deadline:
            return calls
        time.sleep(0.01)


def settings(world: World, **overrides: Any) -> Settings:
    return Settings(
        _env_file=None,
        github_app_id=APP_ID,
        github_private_key=SecretStr(world.private_key),
        github_api_url=f"{world.url}/api/v3",
        **overrides,
    )


def client(world: World, **policy: Any) -> GitHub[TokenAuthStrategy]:
    token = world.installation_token()
    return GitHub(TokenAuthStrategy(token), base_url=world.api, auto_retry=GitHubRetry(**policy))


async def installation_client(world: World, **overrides: Any) -> GitHub[TokenAuthStrategy]:
    """The client Otto's activities use (GitHubApp built from settings)."""
    return await GitHubApp(settings(world, **overrides)).installation_client(world.installation_id)


# --- the retry policy, through githubkit and HTTP --------------------------------------------------------
async def test_server_errors_are_retried_with_backoff(world: World) -> None:
    world.sim.inject_faults("GET", REPO_PATH, [Fault.bad_gateway(), Fault.service_unavailable()])
    started = time.monotonic()
    gh = client(world, backoff_s=0.05)
    repo = (await gh.rest.repos.async_get(OWNER, REPO)).parsed_data
    assert repo.name == REPO
    assert time.monotonic() - started >= 0.15  # 0.05 s, then 0.1 s
    assert [(c.status, c.injected) for c in logged(world.sim, REPO_PATH, 3)] == [
        (502, True),
        (503, True),
        (200, False),
    ]


async def test_server_errors_give_up_after_a_few_retries(world: World) -> None:
    world.sim.inject_faults("GET", REPO_PATH, [Fault.gateway_timeout()] * 5)
    gh = client(world, backoff_s=0.01, server_error_retries=3)
    with pytest.raises(RequestFailed) as err:
        await gh.rest.repos.async_get(OWNER, REPO)
    assert err.value.response.status_code == 504
    assert world.sim.count_calls("GET", REPO_PATH) == 4
    assert world.sim.pending_faults == 1


async def test_a_post_is_not_repeated_after_a_server_error(world: World) -> None:
    """GitHub may have applied it: the activity's retry looks before it creates again."""
    number = world.sim.create_issue(OWNER, REPO, "Hello", "", "alice")
    world.sim.inject_faults("POST", rf"{REPO_PATH}/issues/\d+/comments", [Fault.bad_gateway()])
    gh = client(world, backoff_s=0.01)
    with pytest.raises(RequestFailed) as err:
        await gh.rest.issues.async_create_comment(OWNER, REPO, number, body="hi")
    assert err.value.response.status_code == 502
    assert world.sim.count_calls("POST", rf"{REPO_PATH}/issues/\d+/comments") == 1


async def test_repeatable_posts_are_retried(world: World) -> None:
    """An installation token and a reaction: asking twice has the effect of asking once."""
    number = world.sim.create_issue(OWNER, REPO, "Hello", "", "alice")
    world.sim.inject_faults("POST", r"/app/installations/\d+/access_tokens", [Fault.bad_gateway()])
    world.sim.inject_faults("POST", rf"{REPO_PATH}/issues/\d+/reactions", [Fault.service_unavailable()])
    policy = GitHubRetry(backoff_s=0.01)
    app = GitHub(AppAuthStrategy(APP_ID, world.private_key), base_url=world.api, auto_retry=policy)
    token = (await app.rest.apps.async_create_installation_access_token(world.installation_id)).parsed_data
    gh = GitHub(TokenAuthStrategy(token.token), base_url=world.api, auto_retry=policy)
    await gh.rest.reactions.async_create_for_issue(OWNER, REPO, number, content="eyes")
    assert [r.content for r in world.sim.reactions(OWNER, REPO, number)] == ["eyes"]
    assert [c.status for c in world.sim.calls if c.injected] == [502, 503]


async def test_secondary_limit_waits_retry_after_in_process(world: World) -> None:
    gh = await installation_client(world)
    world.sim.inject_faults("GET", REPO_PATH, [Fault.secondary_rate_limit(retry_after=1)])
    started = time.monotonic()
    assert (await gh.rest.repos.async_get(OWNER, REPO)).parsed_data.name == REPO
    assert time.monotonic() - started >= 1.0
    assert [c.status for c in logged(world.sim, REPO_PATH, 2)] == [403, 200]


async def test_429_with_retry_after_zero_retries_at_once(world: World) -> None:
    gh = await installation_client(world)
    world.sim.inject_faults("GET", REPO_PATH, [Fault.too_many_requests(retry_after=0)])
    started = time.monotonic()
    assert (await gh.rest.repos.async_get(OWNER, REPO)).parsed_data.name == REPO
    assert time.monotonic() - started < 1.0  # not githubkit's 60 s for a zero timedelta
    assert [c.status for c in logged(world.sim, REPO_PATH, 2)] == [429, 200]


async def test_primary_limit_far_away_raises_rate_limited_at_once(world: World) -> None:
    gh = await installation_client(world)
    reset = int(time.time()) + HOUR
    world.sim.inject_faults("GET", REPO_PATH, [Fault.primary_rate_limit(reset, world.installation_id)])
    started = time.monotonic()
    with pytest.raises(RateLimited) as err:
        await gh.rest.repos.async_get(OWNER, REPO)
    assert time.monotonic() - started < 1.0
    assert err.value.kind == "primary"
    assert not err.value.guessed
    assert HOUR - 5 < err.value.wait_s <= HOUR + DATE_SLACK
    assert "API rate limit exceeded for installation ID" in str(err.value)
    assert world.sim.count_calls("GET", REPO_PATH) == 1


async def test_waits_longer_than_the_setting_are_not_slept(world: World) -> None:
    gh = await installation_client(world, github_max_inline_wait_s=0.5)
    world.sim.inject_faults("GET", REPO_PATH, [Fault.secondary_rate_limit(retry_after=1)])
    with pytest.raises(RateLimited) as err:
        await gh.rest.repos.async_get(OWNER, REPO)
    assert (err.value.kind, err.value.wait_s) == ("secondary", 1.0)


async def test_secondary_limit_without_retry_after_waits_at_least_a_minute(world: World) -> None:
    gh = await installation_client(world)
    world.sim.inject_faults("POST", r"/repos/.*/issues", [Fault.secondary_rate_limit(retry_after=None)])
    with pytest.raises(RateLimited) as err:
        await gh.rest.issues.async_create(OWNER, REPO, title="x")
    assert (err.value.kind, err.value.wait_s, err.value.guessed) == ("secondary", 60.0, True)


async def test_a_forbidden_answer_is_not_a_rate_limit(world: World) -> None:
    gh = await installation_client(world)
    body = {"message": "Resource not accessible by integration"}
    world.sim.inject_faults("GET", REPO_PATH, [Fault(403, {}, body)])
    with pytest.raises(RequestFailed) as err:
        await gh.rest.repos.async_get(OWNER, REPO)
    assert err.value.response.status_code == 403
    assert world.sim.count_calls("GET", REPO_PATH) == 1


# --- activities: RateLimited leaves as a non-retryable ApplicationError --------------------------------
def repo_ref(world: World) -> RepoRef:
    repo_id = world.sim.repo(OWNER, REPO).id
    return RepoRef(installation_id=world.installation_id, owner=OWNER, name=REPO, repo_id=repo_id)


async def test_activity_reports_the_wait_to_the_workflow(world: World) -> None:
    number = world.sim.create_issue(OWNER, REPO, "Hello", "", "alice")
    activities = GitHubActivities(GitHubApp(settings(world)), "otto")
    world.sim.inject_faults("GET", REPO_PATH, [Fault.primary_rate_limit(time.time() + HOUR)])
    with pytest.raises(ApplicationError) as err:
        await activities.load_issue(LoadIssueInput(repo=repo_ref(world), issue_number=number))
    assert err.value.type == RATE_LIMITED
    assert err.value.non_retryable
    assert HOUR - 5 < err.value.details[0] <= HOUR + DATE_SLACK
    assert rate_limit_wait(err.value) is not None
    assert (await activities.load_issue(LoadIssueInput(repo=repo_ref(world), issue_number=number))).title == (
        "Hello"
    )


async def test_graphql_rate_limits_become_durable_waits_too(world: World) -> None:
    """GraphQL reports its limit in a 200 answer, which githubkit raises outside auto_retry."""
    gh = await installation_client(world)
    limited = {"data": None, "errors": [{"type": "RATE_LIMITED", "message": "API rate limit exceeded"}]}
    headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(time.time()) + HOUR)}
    world.sim.inject_faults("POST", "/graphql", [Fault(200, headers, limited)])

    @durable_rate_limits
    async def query() -> Any:
        return await gh.async_graphql("query { viewer { login } }")

    with pytest.raises(ApplicationError) as err:
        await query()
    assert err.value.type == RATE_LIMITED
    assert HOUR - 5 < err.value.details[0] <= HOUR + DATE_SLACK


def test_rate_limit_wait_ignores_other_failures() -> None:
    assert rate_limit_wait(ApplicationError("boom", type="ModelError")) is None
    assert rate_limit_wait(RuntimeError("boom")) is None
    error = RateLimited(12.5, "secondary", guessed=True).as_activity_error()
    assert rate_limit_wait(error) is not None
    wait, guessed = rate_limit_wait(error) or (None, None)
    assert wait is not None
    assert wait.total_seconds() == 12.5
    assert guessed


# --- the workflow side: durable timers on Temporal's time-skipping test server -------------------------
class Probe(BaseModel):
    load: LoadIssueInput
    max_waits: int = 5


class Loaded(BaseModel):
    title: str
    waited_s: float


@workflow.defn
class LoadIssueWorkflow:
    @workflow.run
    async def run(self, probe: Probe) -> Loaded:
        started = workflow.now()
        issue = await github(LOAD_ISSUE, probe.load, max_waits=probe.max_waits)
        return Loaded(title=issue.title, waited_s=(workflow.now() - started).total_seconds())


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    server = Path(sys.executable).parent / "temporal-test-server"
    async with await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=str(server)
    ) as environment:
        yield environment


async def run_probe(
    env: WorkflowEnvironment, world: World, faults: list[Fault], max_waits: int = 5
) -> Loaded:
    number = world.sim.create_issue(OWNER, REPO, "Rate limited", "", "alice")
    activities = GitHubActivities(GitHubApp(settings(world)), "otto")
    world.sim.inject_faults("GET", REPO_PATH, faults)
    queue = f"github-calls-{uuid.uuid4()}"
    async with Worker(
        env.client, task_queue=queue, workflows=[LoadIssueWorkflow], activities=[activities.load_issue]
    ):
        loaded: Loaded = await env.client.execute_workflow(
            "LoadIssueWorkflow",
            Probe(load=LoadIssueInput(repo=repo_ref(world), issue_number=number), max_waits=max_waits),
            id=f"probe-{uuid.uuid4()}",
            task_queue=queue,
            result_type=Loaded,
        )
        return loaded


async def test_an_hour_long_rate_limit_is_a_durable_timer(env: WorkflowEnvironment, world: World) -> None:
    started = time.monotonic()
    loaded = await run_probe(
        env, world, [Fault.primary_rate_limit(time.time() + HOUR, world.installation_id)]
    )
    elapsed = time.monotonic() - started
    assert loaded.title == "Rate limited"
    assert loaded.waited_s >= HOUR  # workflow time went past the reset...
    assert elapsed < 5.0  # ...while no worker slept through it
    assert [(c.status, c.injected) for c in logged(world.sim, REPO_PATH, 2)] == [
        (403, True),
        (200, False),
    ]


async def test_guessed_waits_double(env: WorkflowEnvironment, world: World) -> None:
    faults = [Fault.secondary_rate_limit(retry_after=None)] * 2
    loaded = await run_probe(env, world, faults)
    assert 180 <= loaded.waited_s < 200  # 60 s, then 120 s
    assert len(logged(world.sim, REPO_PATH, 3)) == 3


async def test_waits_are_bounded(env: WorkflowEnvironment, world: World) -> None:
    faults = [Fault.primary_rate_limit(time.time() + HOUR)] * 3
    with pytest.raises(WorkflowFailureError) as err:
        await run_probe(env, world, faults, max_waits=2)
    cause = err.value.cause
    assert isinstance(cause, ActivityError)
    assert isinstance(cause.cause, ApplicationError)
    assert cause.cause.type == RATE_LIMITED
    assert world.sim.count_calls("GET", REPO_PATH) == 3
