"""Git over smart HTTP with tokens, pushes moving branches and pull requests, merges with real git."""

from __future__ import annotations

from pathlib import Path

import pytest
from githubkit.exception import RequestFailed

from tests.conftest_sim import OWNER, REPO, World, sim_servers_fixture, world_fixture  # noqa: F401


def clone(world: World, token: str | None, dest: Path) -> None:
    world.git("clone", "--quiet", world.clone_url(), str(dest), token=token)


def commit(world: World, work: Path, path: str, text: str, message: str) -> None:
    (work / path).parent.mkdir(parents=True, exist_ok=True)
    (work / path).write_text(text)
    world.git("add", "-A", cwd=work)
    world.git("commit", "--quiet", "-m", message, cwd=work)


def test_clone_and_push_need_a_valid_token(world: World) -> None:
    token = world.installation_token()
    work = world.tmp / "work"
    clone(world, token, work)
    assert (work / "src" / "app.py").read_text().startswith("def add")
    denied = world.git("clone", world.clone_url(), str(world.tmp / "nope"), check=False)
    assert denied.returncode != 0
    wrong = world.git("clone", world.clone_url(), str(world.tmp / "nope2"), token="ghs_wrong", check=False)
    assert wrong.returncode != 0

    world.git("checkout", "--quiet", "-b", "otto/1/t1", cwd=work)
    commit(world, work, "src/sub.py", "def sub(a, b):\n    return a - b\n", "Add sub")
    bad = world.git("push", "origin", "otto/1/t1", cwd=work, token="ghs_wrong", check=False)
    assert bad.returncode != 0
    assert "otto/1/t1" not in world.sim.branches(OWNER, REPO)
    world.git("push", "--quiet", "origin", "otto/1/t1", cwd=work, token=token)
    head = world.git("rev-parse", "HEAD", cwd=work).stdout.strip()
    assert world.sim.branches(OWNER, REPO)["otto/1/t1"] == head
    assert world.sim.read_file(OWNER, REPO, "otto/1/t1", "src/sub.py") == "def sub(a, b):\n    return a - b\n"
    assert world.sim.pushes[-1].updates == [("refs/heads/otto/1/t1", None, head)]
    with world.client(token) as gh:
        assert gh.rest.repos.get_branch(OWNER, REPO, "otto/1/t1").parsed_data.commit.sha == head
        pr = gh.rest.pulls.create(OWNER, REPO, title="Add sub", head="otto/1/t1", base="main").parsed_data
    world.sim.wait_for_deliveries_idle(10)

    commit(world, work, "src/sub.py", "def sub(a, b):\n    return a - b  # v2\n", "v2")
    world.git("push", "--quiet", "origin", "otto/1/t1", cwd=work, token=token)
    world.sim.wait_for_deliveries_idle(10)
    sync = world.payloads("pull_request", "synchronize")
    new_head = world.git("rev-parse", "HEAD", cwd=work).stdout.strip()
    assert [(p["number"], p["before"], p["after"]) for p in sync] == [(pr.number, head, new_head)]
    assert sync[0]["sender"]["login"] == "otto[bot]"


def test_human_token_push_and_read_only_user_cannot_push(world: World) -> None:
    work = world.tmp / "human"
    clone(world, world.sim.create_user_token("carol"), work)
    commit(world, work, "x.txt", "x\n", "x")
    carol = world.git(
        "push",
        "origin",
        "HEAD:refs/heads/carol",
        cwd=work,
        token=world.sim.create_user_token("carol"),
        check=False,
    )
    assert carol.returncode != 0
    world.git(
        "push", "--quiet", "origin", "HEAD:refs/heads/bob", cwd=work, token=world.sim.create_user_token("bob")
    )
    assert "bob" in world.sim.branches(OWNER, REPO)


def open_pr(world: World, branch: str, files: dict[str, str | None], draft: bool = False) -> int:
    world.sim.push_commit(OWNER, REPO, branch, files, f"change on {branch}", "bob")
    with world.client(world.installation_token()) as gh:
        created = gh.rest.pulls.create(OWNER, REPO, title=branch, head=branch, base="main", draft=draft)
        return int(created.parsed_data.number)


@pytest.mark.parametrize("method", ["merge", "squash", "rebase"])
def test_merge_methods_produce_real_git_results(world: World, method: str) -> None:
    sim = world.sim
    number = open_pr(world, "feat", {"feat.txt": "feat\n"})
    sim.push_commit(OWNER, REPO, "feat", {"feat2.txt": "two\n"}, "second", "bob")
    sim.push_commit(OWNER, REPO, "main", {"other.txt": "o\n"}, "main moves", "alice")
    base_before = sim.branches(OWNER, REPO)["main"]
    head = sim.pull(OWNER, REPO, number).last_head_sha
    with world.client(world.installation_token()) as gh:
        with pytest.raises(RequestFailed) as err:
            gh.rest.pulls.merge(OWNER, REPO, number, sha=base_before, merge_method=method)
        assert err.value.response.status_code == 409
        result = gh.rest.pulls.merge(OWNER, REPO, number, sha=head, merge_method=method).parsed_data
        assert result.merged is True
        merged = gh.rest.pulls.get(OWNER, REPO, number).parsed_data
        assert merged.merged
        assert merged.state == "closed"
    assert sim.pull(OWNER, REPO, number).merge_commit_sha == result.sha
    main = sim.branches(OWNER, REPO)["main"]
    assert main == result.sha
    log = sim.git_log(OWNER, REPO, "main")
    assert sim.read_file(OWNER, REPO, "main", "feat2.txt") == "two\n"
    assert sim.read_file(OWNER, REPO, "main", "other.txt") == "o\n"
    if method == "merge":
        assert log[0].parents == [base_before, head]
    elif method == "squash":
        assert log[0].parents == [base_before]
        assert log[0].message.startswith("feat (#")
    else:
        assert [c.message for c in log[:2]] == ["second", "change on feat"]
        assert log[1].parents == [base_before]
    sim.wait_for_deliveries_idle(10)
    closed = world.payloads("pull_request", "closed")
    assert closed[-1]["pull_request"]["merged"] is True


def test_conflicts_make_a_pull_request_unmergeable(world: World) -> None:
    sim = world.sim
    number = open_pr(world, "conflict", {"README.md": "# Theirs\n"})
    sim.push_commit(OWNER, REPO, "main", {"README.md": "# Ours\n"}, "main edits README", "alice")
    draft = open_pr(world, "drafty", {"d.txt": "d\n"}, draft=True)
    with world.client(world.installation_token()) as gh:
        pr = gh.rest.pulls.get(OWNER, REPO, number).parsed_data
        assert (pr.mergeable, pr.mergeable_state) == (False, "dirty")
        with pytest.raises(RequestFailed) as err:
            gh.rest.pulls.merge(OWNER, REPO, number)
        assert err.value.response.status_code == 405
        with pytest.raises(RequestFailed) as err:
            gh.rest.pulls.merge(OWNER, REPO, draft)
        assert err.value.response.status_code == 405
        gh.graphql(
            "mutation($id: ID!) { markPullRequestReadyForReview(input: {pullRequestId: $id}) "
            "{ pullRequest { isDraft } } }",
            {"id": gh.rest.pulls.get(OWNER, REPO, draft).parsed_data.node_id},
        )
        assert gh.rest.pulls.merge(OWNER, REPO, draft, merge_method="squash").status_code == 200


def test_reviews_and_review_comments(world: World) -> None:
    sim = world.sim
    number = open_pr(world, "reviewed", {"src/app.py": "def add(a, b):\n    return b + a\n"})
    sim.submit_review(
        OWNER,
        REPO,
        number,
        "alice",
        "COMMENTED",
        "see inline",
        comments=[{"path": "src/app.py", "line": 2, "body": "why swap?"}],
    )
    delivery = sim.submit_review(OWNER, REPO, number, "bob", "APPROVED")
    assert delivery.payload["review"]["state"] == "approved"
    with world.client(world.installation_token()) as gh:
        reviews = gh.rest.pulls.list_reviews(OWNER, REPO, number).parsed_data
        assert [(r.user.login, r.state) for r in reviews if r.user] == [
            ("alice", "COMMENTED"),
            ("bob", "APPROVED"),
        ]
        head = gh.rest.pulls.get(OWNER, REPO, number).parsed_data.head.sha
        assert all(r.commit_id == head for r in reviews)
        comments = gh.rest.pulls.list_comments_for_review(OWNER, REPO, number, reviews[0].id).parsed_data
        assert [(c.path, c.body) for c in comments] == [("src/app.py", "why swap?")]
        assert "+    return b + a" in comments[0].diff_hunk
        assert len(gh.rest.pulls.list_review_comments(OWNER, REPO, number).parsed_data) == 1


def test_lazy_mergeability_answers_null_first_like_github(world: World) -> None:
    world.sim.lazy_mergeability = True
    world.sim.push_commit(OWNER, REPO, "lazy", {"lazy.txt": "l\n"}, "lazy", "bob")
    with world.client(world.installation_token()) as gh:
        created = gh.rest.pulls.create(OWNER, REPO, title="lazy", head="lazy", base="main").parsed_data
        second = gh.rest.pulls.get(OWNER, REPO, created.number).parsed_data
        world.sim.push_commit(OWNER, REPO, "lazy", {"lazy.txt": "l2\n"}, "lazy 2", "bob")
        after_push = gh.rest.pulls.get(OWNER, REPO, created.number).parsed_data
        again = gh.rest.pulls.get(OWNER, REPO, created.number).parsed_data
    assert (created.mergeable, created.mergeable_state) == (None, "unknown")
    assert (second.mergeable, second.mergeable_state) == (True, "clean")
    assert (after_push.mergeable, again.mergeable) == (None, True)


def test_pushes_at_the_same_time_each_record_only_their_own_ref(world: World) -> None:
    """Two clients push different branches at once (Otto's parallel tasks do): each push is one event
    with its own ref update, never also the other's (a ref diff around each push counted both twice)."""
    from concurrent.futures import ThreadPoolExecutor

    token = world.installation_token()
    heads: dict[str, str] = {}
    for i in range(6):
        work = world.tmp / f"work{i}"
        clone(world, token, work)
        world.git("checkout", "--quiet", "-b", f"otto/1/t{i}", cwd=work)
        commit(world, work, f"src/m{i}.py", f"M = {i}\n", f"Add m{i}")
        heads[f"refs/heads/otto/1/t{i}"] = world.git("rev-parse", "HEAD", cwd=work).stdout.strip()
    before = len(world.sim.pushes)

    def push(i: int) -> None:
        world.git("push", "--quiet", "origin", f"otto/1/t{i}", cwd=world.tmp / f"work{i}", token=token)

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(push, range(6)))
    updates = [u for p in world.sim.pushes[before:] for u in p.updates]
    assert sorted(updates) == sorted((ref, None, sha) for ref, sha in heads.items())
