"""The simulator's REST API through githubkit's typed client (App auth and installation tokens)."""

from __future__ import annotations

import base64

import pytest
from githubkit.exception import RequestFailed

from tests.conftest_sim import APP_ID, OWNER, REPO, World, sim_servers_fixture, world_fixture  # noqa: F401


def test_app_and_installation_endpoints(world: World) -> None:
    with world.app_client() as gh:
        app = gh.rest.apps.get_authenticated().parsed_data
        assert (app.id, app.slug) == (APP_ID, "otto")
        inst = gh.rest.apps.get_repo_installation(OWNER, REPO).parsed_data
        assert inst.id == world.installation_id
        assert inst.account is not None
        token = gh.rest.apps.create_installation_access_token(world.installation_id).parsed_data
        assert token.token.startswith("ghs_")
        assert len(token.token) == 40
        assert token.expires_at.endswith("Z")
    with world.client(token.token) as gh:
        bot = gh.rest.users.get_by_username("otto[bot]").parsed_data
        assert bot.type == "Bot"
        assert bot.id != APP_ID
        repo = gh.rest.repos.get(OWNER, REPO).parsed_data
        assert repo.default_branch == "main"
        assert repo.full_name == f"{OWNER}/{REPO}"
        assert repo.clone_url == f"{world.url}/{OWNER}/{REPO}.git"
        assert repo.private is True


def test_collaborator_permission_levels(world: World) -> None:
    world.sim.set_permission(OWNER, REPO, "mallory", "maintain")
    world.sim.create_user("tri")
    world.sim.set_permission(OWNER, REPO, "tri", "triage")
    expected = {"alice": "admin", "bob": "write", "carol": "read", "mallory": "write", "tri": "read"}
    with world.client(world.installation_token()) as gh:
        for login, level in expected.items():
            data = gh.rest.repos.get_collaborator_permission_level(OWNER, REPO, login).parsed_data
            assert data.permission == level, login
        data = gh.rest.repos.get_collaborator_permission_level(OWNER, REPO, "mallory").parsed_data
        assert data.role_name == "maintain"
        with pytest.raises(RequestFailed) as err:
            gh.rest.repos.get_collaborator_permission_level(OWNER, REPO, "nobody-here")
        assert err.value.response.status_code == 404


def test_issues_comments_reactions_labels(world: World) -> None:
    sim = world.sim
    number = sim.create_issue(OWNER, REPO, "Add subtract", "Please add `sub`.", "alice")
    with world.client(world.installation_token()) as gh:
        issue = gh.rest.issues.get(OWNER, REPO, number).parsed_data
        assert issue.title == "Add subtract"
        assert not issue.pull_request
        created = gh.rest.issues.create_comment(OWNER, REPO, number, body="Working on it").parsed_data
        assert created.user is not None
        assert created.user.login == "otto[bot]"
        edited = gh.rest.issues.update_comment(OWNER, REPO, created.id, body="Done").parsed_data
        assert edited.body == "Done"
        assert gh.rest.issues.get_comment(OWNER, REPO, created.id).parsed_data.body == "Done"
        assert sim.comments(OWNER, REPO, number)[0].edits == ["Working on it"]

        first = gh.rest.reactions.create_for_issue(OWNER, REPO, number, content="eyes")
        again = gh.rest.reactions.create_for_issue(OWNER, REPO, number, content="eyes")
        assert (first.status_code, again.status_code) == (201, 200)
        assert first.parsed_data.id == again.parsed_data.id
        assert [r.content for r in gh.rest.reactions.list_for_issue(OWNER, REPO, number).parsed_data] == [
            "eyes"
        ]
        rx = gh.rest.reactions.create_for_issue_comment(OWNER, REPO, created.id, content="rocket")
        assert rx.status_code == 201
        assert len(gh.rest.reactions.list_for_issue_comment(OWNER, REPO, created.id).parsed_data) == 1
        assert gh.rest.issues.get(OWNER, REPO, number).parsed_data.reactions.eyes == 1

        labels = gh.rest.issues.add_labels(OWNER, REPO, number, labels=["otto", "bug"]).parsed_data
        assert sorted(lbl.name for lbl in labels) == ["bug", "otto"]
        left = gh.rest.issues.remove_label(OWNER, REPO, number, "bug").parsed_data
        assert [lbl.name for lbl in left] == ["otto"]
        assert [lbl.name for lbl in gh.rest.issues.list_labels_on_issue(OWNER, REPO, number).parsed_data] == [
            "otto"
        ]

        closed = gh.rest.issues.update(
            OWNER, REPO, number, state="closed", state_reason="completed"
        ).parsed_data
        assert closed.state == "closed"
        assert closed.closed_at is not None
        with pytest.raises(RequestFailed) as err:
            gh.rest.issues.get(OWNER, REPO, 999)
        assert err.value.response.status_code == 404
    assert sim.count_calls("POST", rf"/repos/{OWNER}/{REPO}/issues/{number}/comments", 201) == 1


def test_comment_pagination_and_link_header(world: World) -> None:
    sim = world.sim
    number = sim.create_issue(OWNER, REPO, "Chatty", "", "alice")
    for i in range(5):
        sim.comment(OWNER, REPO, number, f"comment {i}", "bob")
    with world.client(world.installation_token()) as gh:
        resp = gh.rest.issues.list_comments(OWNER, REPO, number, per_page=2, page=1)
        assert [c.body for c in resp.parsed_data] == ["comment 0", "comment 1"]
        assert 'rel="next"' in resp.headers["link"]
        assert 'rel="last"' in resp.headers["link"]
        bodies = [
            c.body
            for c in gh.rest.paginate(
                gh.rest.issues.list_comments, owner=OWNER, repo=REPO, issue_number=number, per_page=2
            )
        ]
        assert bodies == [f"comment {i}" for i in range(5)]


def test_contents_branches_refs(world: World) -> None:
    with world.client(world.installation_token()) as gh:
        content = gh.rest.repos.get_content(OWNER, REPO, "src/app.py", ref="main").parsed_data
        assert base64.b64decode(content.content).decode() == "def add(a, b):\n    return a + b\n"
        with pytest.raises(RequestFailed) as err:
            gh.rest.repos.get_content(OWNER, REPO, "missing.txt")
        assert err.value.response.status_code == 404
        listing = gh.rest.repos.get_content(OWNER, REPO, "src").parsed_data
        assert [e.name for e in listing] == ["app.py"]
        main_sha = world.sim.branches(OWNER, REPO)["main"]
        assert gh.rest.repos.get_branch(OWNER, REPO, "main").parsed_data.commit.sha == main_sha
        assert gh.rest.git.get_ref(OWNER, REPO, "heads/main").parsed_data.object_.sha == main_sha
        world.sim.push_commit(OWNER, REPO, "feature", {"x.txt": "x\n"}, "add x", "bob")
        assert gh.rest.git.delete_ref(OWNER, REPO, "heads/feature").status_code == 204
        assert "feature" not in world.sim.branches(OWNER, REPO)
        with pytest.raises(RequestFailed) as err:
            gh.rest.repos.get_branch(OWNER, REPO, "feature")
        assert err.value.response.status_code == 404


def test_pull_requests_and_duplicate_head(world: World) -> None:
    sim = world.sim
    sim.push_commit(
        OWNER, REPO, "otto/1/t1-sub", {"src/app.py": "def sub(a, b):\n    return a - b\n"}, "Add sub", "bob"
    )
    with world.client(world.installation_token()) as gh:
        pr = gh.rest.pulls.create(
            OWNER, REPO, title="Add sub", head="otto/1/t1-sub", base="main", body="b", draft=True
        ).parsed_data
        assert pr.draft is True
        assert pr.head.ref == "otto/1/t1-sub"
        assert pr.base.ref == "main"
        assert pr.head.sha == sim.branches(OWNER, REPO)["otto/1/t1-sub"]
        assert pr.user.login == "otto[bot]"
        with pytest.raises(RequestFailed) as err:
            gh.rest.pulls.create(OWNER, REPO, title="again", head=f"{OWNER}:otto/1/t1-sub", base="main")
        assert err.value.response.status_code == 422
        assert "already exists" in err.value.response.json()["errors"][0]["message"]
        with pytest.raises(RequestFailed) as err:
            gh.rest.pulls.create(OWNER, REPO, title="nope", head="no-such-branch", base="main")
        assert err.value.response.status_code == 422

        found = gh.rest.pulls.list(OWNER, REPO, state="open", head=f"{OWNER}:otto/1/t1-sub").parsed_data
        assert [p.number for p in found] == [pr.number]
        assert gh.rest.pulls.list(OWNER, REPO, head=f"{OWNER}:other").parsed_data == []
        full = gh.rest.pulls.get(OWNER, REPO, pr.number).parsed_data
        assert full.mergeable is True
        assert full.changed_files == 1
        files = gh.rest.pulls.list_files(OWNER, REPO, pr.number).parsed_data
        assert [(f.filename, f.status) for f in files] == [("src/app.py", "modified")]
        as_issue = gh.rest.issues.get(OWNER, REPO, pr.number).parsed_data
        assert as_issue.pull_request
        updated = gh.rest.pulls.update(OWNER, REPO, pr.number, title="Add sub()", body="new").parsed_data
        assert (updated.title, updated.body) == ("Add sub()", "new")
        new_head = sim.push_commit(OWNER, REPO, "otto/1/t1-sub", {"NOTES": "n\n"}, "notes", "bob")
        assert gh.rest.pulls.get(OWNER, REPO, pr.number).parsed_data.head.sha == new_head
        closed = gh.rest.pulls.update(OWNER, REPO, pr.number, state="closed").parsed_data
        assert closed.state == "closed"
        assert closed.merged is False
    assert sim.count_calls("POST", rf"/repos/{OWNER}/{REPO}/pulls", 201) == 1


def test_check_runs(world: World) -> None:
    sha = world.sim.branches(OWNER, REPO)["main"]
    with world.client(world.installation_token()) as gh:
        run = gh.rest.checks.create(
            OWNER,
            REPO,
            name="otto/verify",
            head_sha=sha,
            status="in_progress",
            output={"title": "Verifying", "summary": "running"},
        ).parsed_data
        assert run.status == "in_progress"
        assert run.app is not None
        assert run.app.id == APP_ID
        done = gh.rest.checks.update(
            OWNER, REPO, run.id, conclusion="success", output={"title": "ok", "summary": "all good"}
        ).parsed_data
        assert (done.status, done.conclusion) == ("completed", "success")
        gh.rest.checks.create(OWNER, REPO, name="other", head_sha=sha)
        listed = gh.rest.checks.list_for_ref(OWNER, REPO, "main", check_name="otto/verify").parsed_data
        assert listed.total_count == 1
        assert listed.check_runs[0].id == run.id
        assert gh.rest.checks.list_for_ref(OWNER, REPO, sha).parsed_data.total_count == 2


def test_unknown_route_and_missing_auth_are_github_errors(world: World) -> None:
    resp = world.http.get(f"{world.url}/api/v3/nope")
    assert resp.status_code == 404
    assert resp.json()["message"] == "Not Found"
    assert "documentation_url" in resp.json()
    resp = world.http.get(f"{world.url}/api/v3/repos/{OWNER}/{REPO}")
    assert resp.status_code == 401
    assert "documentation_url" in resp.json()
