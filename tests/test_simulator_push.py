"""The simulator's ``push`` webhook: sent whenever a branch moves, appears or goes (a person's push, git over
HTTP, the git refs API, a merge), shaped like GitHub's published example, only to Apps subscribed to it."""

from __future__ import annotations

import functools
from typing import Any

import githubkit.webhooks

from app.dev.simulator.gitrepo import ZERO_SHA
from app.dev.simulator.state import Delivery
from tests.conftest_sim import (  # noqa: F401
    APP_ID,
    OWNER,
    REPO,
    World,
    load_json,
    rsa_pair,
    sim_servers_fixture,
    world_fixture,
)


@functools.cache
def example() -> dict[str, Any]:
    """GitHub's example push to a branch as delivered to an App (npm @octokit/webhooks-examples)."""
    push = next(e for e in load_json("webhooks-examples.json") if e["name"] == "push")
    found: dict[str, Any] = next(
        x for x in push["examples"] if x["ref"].startswith("refs/heads/") and "installation" in x
    )
    return found


def pushes(world: World, ref: str | None = None) -> list[Delivery]:
    return [d for d in world.sim.deliveries_of("push") if ref is None or d.payload["ref"] == ref]


def assert_shaped_like_github(delivery: Delivery) -> None:
    """Same keys as GitHub's example (the repository's may hold more: the REST shape's newer fields), and
    githubkit's typed model of the event accepts it."""
    payload, model = delivery.payload, example()
    assert set(payload) == set(model)
    assert set(model["repository"]) <= set(payload["repository"])
    assert set(model["repository"]["owner"]) <= set(payload["repository"]["owner"])
    assert isinstance(payload["repository"]["created_at"], int)
    assert isinstance(payload["repository"]["pushed_at"], int)
    assert set(payload["pusher"]) == set(model["pusher"])
    assert set(model["sender"]) <= set(payload["sender"])
    assert set(payload["installation"]) == set(model["installation"])
    for commit in payload["commits"] + ([payload["head_commit"]] if payload["head_commit"] else []):
        assert set(commit) == set(model["head_commit"])
        assert set(commit["author"]) <= set(model["head_commit"]["author"])
    assert delivery.action is None
    assert delivery.headers["X-GitHub-Event"] == "push"
    githubkit.webhooks.parse("push", delivery.body)


def test_a_persons_push_is_delivered_at_once_then_synchronize(world: World) -> None:
    sim = world.sim
    first = sim.push_commit(
        OWNER, REPO, "feature", {"src/sub.py": "def sub(a, b):\n    return a - b\n"}, "Sub", "bob"
    )
    [created] = pushes(world)  # synchronous: already posted when push_commit returns
    with world.receiver.lock:
        assert created.id in {r.headers["x-github-delivery"] for r in world.receiver.received}
    assert created.status_code == 200
    p = created.payload
    assert (p["ref"], p["before"], p["after"]) == ("refs/heads/feature", ZERO_SHA, first)
    assert (p["created"], p["deleted"], p["forced"], p["base_ref"]) == (True, False, False, None)
    assert p["compare"] == f"{world.url}/{OWNER}/{REPO}/compare/feature"
    assert [c["id"] for c in p["commits"]] == [first]  # what the branch has beyond the default branch
    commit = p["commits"][0]
    assert (commit["message"], commit["distinct"], commit["added"]) == ("Sub", True, ["src/sub.py"])
    assert commit["author"]["username"] == "bob"
    assert commit["url"] == f"{world.url}/{OWNER}/{REPO}/commit/{first}"
    assert p["head_commit"] == commit
    assert p["sender"]["login"] == p["pusher"]["name"] == "bob"
    assert p["installation"]["id"] == world.installation_id
    assert p["repository"]["full_name"] == f"{OWNER}/{REPO}"
    assert_shaped_like_github(created)

    with world.client(world.installation_token()) as gh:
        pr = gh.rest.pulls.create(OWNER, REPO, title="Sub", head="feature", base="main").parsed_data
    sim.wait_for_deliveries_idle(10)
    second = sim.push_commit(
        OWNER,
        REPO,
        "feature",
        {"src/sub.py": "def sub(a, b):\n    return a - b  # v2\n", "README.md": None},
        "v2",
        "bob",
    )
    moved = pushes(world)[-1]
    p = moved.payload
    assert (p["before"], p["after"], p["created"], p["forced"]) == (first, second, False, False)
    assert p["compare"] == f"{world.url}/{OWNER}/{REPO}/compare/{first[:12]}...{second[:12]}"
    assert [(c["id"], c["modified"], c["removed"]) for c in p["commits"]] == [
        (second, ["src/sub.py"], ["README.md"])
    ]
    assert_shaped_like_github(moved)
    # GitHub's order: the push, then the pull request's synchronize
    events = [(d.event, d.action) for d in sim.deliveries]
    assert events[-2:] == [("push", None), ("pull_request", "synchronize")]
    assert sim.deliveries_of("pull_request", "synchronize")[-1].payload["number"] == pr.number


def test_a_force_push_is_forced(world: World) -> None:
    sim = world.sim
    old = sim.push_commit(OWNER, REPO, "feature", {"a.txt": "a\n"}, "a", "bob")
    new = sim.push_commit(OWNER, REPO, "feature", {"b.txt": "b\n"}, "b instead", "bob", force=True)
    p = pushes(world)[-1].payload
    assert (p["before"], p["after"], p["forced"], p["created"]) == (old, new, True, False)
    assert [c["id"] for c in p["commits"]] == [new]
    fast_forward = sim.push_commit(OWNER, REPO, "feature", {"c.txt": "c\n"}, "c", "bob")
    assert (pushes(world)[-1].payload["after"], pushes(world)[-1].payload["forced"]) == (fast_forward, False)


def test_a_merge_pushes_to_the_base_branch_as_the_merger(world: World) -> None:
    sim = world.sim
    head = sim.push_commit(OWNER, REPO, "feature", {"f.txt": "f\n"}, "feature", "bob")
    main_before = sim.branches(OWNER, REPO)["main"]
    with world.client(world.installation_token()) as gh:
        number = gh.rest.pulls.create(OWNER, REPO, title="F", head="feature", base="main").parsed_data.number
    with world.client(sim.create_user_token(OWNER)) as gh:  # a person merges the App's pull request
        merged = gh.rest.pulls.merge(OWNER, REPO, number, merge_method="merge").parsed_data.sha
    sim.wait_for_deliveries_idle(10)
    [to_main] = pushes(world, "refs/heads/main")
    p = to_main.payload
    assert (p["before"], p["after"], p["created"], p["forced"]) == (main_before, merged, False, False)
    assert p["sender"]["login"] == p["pusher"]["name"] == OWNER
    # the pull request's commit (pushed before: not distinct), then the merge commit GitHub made
    assert [(c["id"], c["distinct"]) for c in p["commits"]] == [(head, False), (merged, True)]
    assert p["head_commit"]["committer"] == {
        "name": "GitHub",
        "email": "noreply@github.com",
        "username": "web-flow",
    }
    assert p["head_commit"]["author"]["username"] == OWNER
    assert_shaped_like_github(to_main)
    closed = sim.deliveries_of("pull_request", "closed")
    assert [d.payload["pull_request"]["merged"] for d in closed] == [True]
    assert closed[0].payload["sender"]["login"] == OWNER


def test_the_git_refs_api_creates_and_deletes_branches_with_a_push(world: World) -> None:
    sim = world.sim
    main = sim.branches(OWNER, REPO)["main"]
    with world.client(world.installation_token()) as gh:
        gh.rest.git.create_ref(OWNER, REPO, ref="refs/heads/copy", sha=main)
        sim.wait_for_deliveries_idle(10)
        [created] = pushes(world, "refs/heads/copy")
        p = created.payload
        assert (p["before"], p["after"], p["created"], p["commits"]) == (ZERO_SHA, main, True, [])
        assert (p["head_commit"]["id"], p["head_commit"]["distinct"]) == (main, False)  # already on main
        assert p["sender"]["login"] == "otto[bot]"
        assert_shaped_like_github(created)

        gh.rest.git.delete_ref(OWNER, REPO, "heads/copy")
    sim.wait_for_deliveries_idle(10)
    deleted = pushes(world, "refs/heads/copy")[-1]
    p = deleted.payload
    assert (p["before"], p["after"], p["created"], p["deleted"], p["forced"]) == (
        main,
        ZERO_SHA,
        False,
        True,
        False,
    )
    assert (p["commits"], p["head_commit"]) == ([], None)
    assert p["compare"] == f"{world.url}/{OWNER}/{REPO}/compare/{main[:12]}...{ZERO_SHA[:12]}"
    assert_shaped_like_github(deleted)


def test_git_pushes_over_http_are_queued_one_event_per_branch(world: World) -> None:
    token = world.installation_token()
    work = world.tmp / "work"
    world.git("clone", "--quiet", world.clone_url(), str(work), token=token)
    world.git("checkout", "--quiet", "-b", "one", cwd=work)
    (work / "one.txt").write_text("1\n")
    world.git("add", "-A", cwd=work)
    world.git("commit", "--quiet", "-m", "one", cwd=work)
    one = world.git("rev-parse", "HEAD", cwd=work).stdout.strip()
    world.git("push", "--quiet", "origin", "one", "one:refs/heads/two", cwd=work, token=token)
    world.sim.wait_for_deliveries_idle(10)
    by_ref = {d.payload["ref"]: d.payload for d in pushes(world)}
    assert set(by_ref) == {"refs/heads/one", "refs/heads/two"}
    for payload in by_ref.values():
        assert (payload["after"], payload["created"], payload["sender"]["login"]) == (one, True, "otto[bot]")
        commit = payload["commits"][0]
        assert commit["author"] == {"name": "t", "email": "t@example.com"}  # not a GitHub user's email

    world.git("commit", "--quiet", "--amend", "-m", "one, amended", cwd=work)
    amended = world.git("rev-parse", "HEAD", cwd=work).stdout.strip()
    world.git("push", "--quiet", "--force", "origin", "one", ":refs/heads/two", cwd=work, token=token)
    world.sim.wait_for_deliveries_idle(10)
    latest = {d.payload["ref"]: d for d in pushes(world)}
    forced, gone = latest["refs/heads/one"].payload, latest["refs/heads/two"].payload
    assert (forced["before"], forced["after"], forced["forced"]) == (one, amended, True)
    assert (gone["deleted"], gone["after"], gone["head_commit"]) == (True, ZERO_SHA, None)
    for delivery in latest.values():
        assert delivery.status_code == 200
        assert_shaped_like_github(delivery)


def test_only_apps_subscribed_to_push_receive_it(world: World) -> None:
    sim = world.sim
    other = sim.register_app(APP_ID + 1, "issues-only", rsa_pair()[1], events=["issues"])
    sim.install_app(other.id, OWNER)
    sim.push_commit(OWNER, REPO, "feature", {"a.txt": "a\n"}, "a", "bob")
    sim.create_issue(OWNER, REPO, "still delivered", "", "bob")
    assert [d.app_id for d in sim.deliveries_of("push")] == [APP_ID]
    assert {d.app_id for d in sim.deliveries_of("issues", "opened")} == {APP_ID, other.id}
