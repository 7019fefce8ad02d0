"""The simulator's fault injection: canned 5xx and rate-limit answers, in order, then normal service."""

from __future__ import annotations

import time

import pytest
from githubkit.exception import PrimaryRateLimitExceeded, RequestFailed, SecondaryRateLimitExceeded

from app.dev.simulator import CallRecord, Fault, Simulator
from tests.conftest_sim import OWNER, REPO, World, sim_servers_fixture, world_fixture  # noqa: F401

ISSUE_PATH = rf"/repos/{OWNER}/{REPO}/issues/\d+"


def logged(sim: Simulator, path: str, count: int) -> list[CallRecord]:
    """The calls to ``path`` once ``count`` are in the log (it is written just after each answer)."""
    deadline = time.monotonic() + 5
    while True:
        calls = [c for c in sim.calls if c.path == path]
        if len(calls) >= count or time.monotonic() > deadline:
            return calls
        time.sleep(0.01)


def test_faults_answer_in_order_then_service_resumes(world: World) -> None:
    sim = world.sim
    number = sim.create_issue(OWNER, REPO, "Hello", "", "alice")
    token = world.installation_token()
    sim.inject_faults("GET", ISSUE_PATH, [Fault.bad_gateway(), Fault.service_unavailable()])
    assert sim.pending_faults == 2
    url = f"{world.api}repos/{OWNER}/{REPO}/issues/{number}"
    headers = {"Authorization": f"token {token}"}

    first = world.http.get(url, headers=headers)
    assert first.status_code == 502
    assert first.headers["content-type"].startswith("text/html")
    assert "502 Bad Gateway" in first.text
    second = world.http.get(url, headers=headers)
    assert second.status_code == 503
    assert second.json()["message"] == "Service Unavailable"
    third = world.http.get(url, headers=headers)
    assert third.status_code == 200
    assert third.json()["title"] == "Hello"
    assert sim.pending_faults == 0

    calls = logged(sim, f"/repos/{OWNER}/{REPO}/issues/{number}", 3)
    assert [(c.status, c.injected) for c in calls] == [(502, True), (503, True), (200, False)]
    assert calls[0].actor == calls[2].actor == f"installation:{world.installation_id}"
    assert sim.count_calls("GET", ISSUE_PATH) == 3
    assert sim.count_calls("GET", ISSUE_PATH, status=502) == 1


def test_faults_match_method_and_whole_path(world: World) -> None:
    sim = world.sim
    number = sim.create_issue(OWNER, REPO, "Hello", "", "alice")
    sim.inject_faults("POST", ISSUE_PATH + "/comments", [Fault.gateway_timeout()])
    sim.inject_faults("*", "/graphql", [Fault(500, {"x-test": "yes"}, "oops")])
    with world.client(world.installation_token()) as gh:
        gh.rest.issues.get(OWNER, REPO, number)  # GET and a different path: untouched
        gh.rest.issues.list_comments(OWNER, REPO, number)  # GET on the faulted path: untouched
        with pytest.raises(RequestFailed) as err:
            gh.rest.issues.create_comment(OWNER, REPO, number, body="first")
        assert err.value.response.status_code == 504
        gh.rest.issues.create_comment(OWNER, REPO, number, body="second")
        raw = world.http.post(f"{world.url}/api/graphql", json={"query": "{ viewer { login } }"})
        assert (raw.status_code, raw.text, raw.headers["x-test"]) == (500, "oops", "yes")
    assert [c.body for c in sim.comments(OWNER, REPO, number)] == ["second"]
    assert [c.path for c in sim.calls if c.injected] == [
        f"/repos/{OWNER}/{REPO}/issues/{number}/comments",
        "/graphql",
    ]
    assert logged(sim, "/graphql", 1)[0].actor == "anonymous"

    sim.inject_faults("GET", ".*", [Fault.bad_gateway()] * 3)
    sim.clear_faults()
    assert sim.pending_faults == 0
    assert world.http.get(f"{world.api}repos/{OWNER}/{REPO}").status_code == 401


def test_rate_limit_faults_look_like_githubs(world: World) -> None:
    sim = world.sim
    reset = int(time.time()) + 3600
    sim.inject_faults(
        "GET",
        f"/repos/{OWNER}/{REPO}",
        [
            Fault.secondary_rate_limit(retry_after=7),
            Fault.too_many_requests(retry_after=3),
            Fault.primary_rate_limit(reset, installation_id=world.installation_id),
            Fault.secondary_rate_limit(retry_after=None),
        ],
    )
    with world.client(world.installation_token()) as gh:
        with pytest.raises(SecondaryRateLimitExceeded) as secondary:
            gh.rest.repos.get(OWNER, REPO)
        assert secondary.value.response.status_code == 403
        assert secondary.value.retry_after.total_seconds() == 7
        body = secondary.value.response.json()
        assert body["message"].startswith("You have exceeded a secondary rate limit")
        assert secondary.value.response.headers["x-github-request-id"] in body["message"]

        with pytest.raises(SecondaryRateLimitExceeded) as too_many:
            gh.rest.repos.get(OWNER, REPO)
        assert too_many.value.response.status_code == 429
        assert too_many.value.retry_after.total_seconds() == 3

        with pytest.raises(PrimaryRateLimitExceeded) as primary:
            gh.rest.repos.get(OWNER, REPO)
        headers = primary.value.response.headers
        assert (headers["x-ratelimit-remaining"], headers["x-ratelimit-reset"]) == ("0", str(reset))
        assert primary.value.response.json()["message"] == (
            f"API rate limit exceeded for installation ID {world.installation_id}."
        )
        assert 3590 < primary.value.retry_after.total_seconds() <= 3600

        with pytest.raises(RequestFailed) as bare:  # no retry-after: githubkit sees a plain 403
            gh.rest.repos.get(OWNER, REPO)
        assert "retry-after" not in bare.value.response.headers
        assert "secondary rate limit" in bare.value.response.json()["message"]

        assert gh.rest.repos.get(OWNER, REPO).parsed_data.name == REPO
    assert [c.status for c in sim.calls if c.injected] == [403, 429, 403, 403]
