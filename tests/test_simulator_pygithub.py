"""A second real client, PyGithub, drives the simulator through a maintainer's whole story, as a user token
and as the App (``GithubIntegration`` with ``Auth.AppAuth``); every REST answer it gets is checked against
GitHub's REST description."""

from __future__ import annotations

import base64
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from github import Auth, Github, GithubException, GithubIntegration

from app.dev.simulator import Simulator, create_app
from app.serve_thread import serve_in_thread
from tests.conftest_sim import APP_ID, FILES, OWNER, REPO, rsa_pair
from tests.openapi_recorder import Recorder, operation_for, problems

ORG = "acme"
# PyGithub spaces requests out (0.25 s, writes 1 s) to be kind to github.com; a local simulator needs none
NO_THROTTLE: dict[str, Any] = {"seconds_between_requests": None, "seconds_between_writes": None}


@dataclass
class PyWorld:
    sim: Simulator
    url: str
    recorder: Recorder
    installation_id: int
    org_installation_id: int
    private_key: str
    tmp: Path

    @property
    def api(self) -> str:
        return f"{self.url}/api/v3"

    def user(self, login: str) -> Github:
        token = self.sim.create_user_token(login)
        return Github(auth=Auth.Token(token), base_url=self.api, retry=None, **NO_THROTTLE)

    def push_branch(self, login: str, branch: str, files: dict[str, str], message: str) -> str:
        """A human clones over smart HTTP, commits and pushes a branch (real git, their own token)."""
        token = self.sim.create_user_token(login)
        basic = base64.b64encode(f"{login}:{token}".encode()).decode()
        env = {
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_AUTHOR_NAME": login,
            "GIT_AUTHOR_EMAIL": f"{login}@example.com",
            "GIT_COMMITTER_NAME": login,
            "GIT_COMMITTER_EMAIL": f"{login}@example.com",
            "PATH": "/usr/bin:/bin:/usr/local/bin",
            "HOME": str(self.tmp),
        }
        work = self.tmp / f"clone-{branch}"

        def git(*args: str, cwd: Path | None = None) -> str:
            cmd = ["git", "-c", f"http.extraheader=AUTHORIZATION: basic {basic}", *args]
            done = subprocess.run(
                cmd, cwd=cwd, env=env, capture_output=True, text=True, check=True, timeout=60
            )
            return done.stdout.strip()

        git("clone", "--quiet", f"{self.url}/{OWNER}/{REPO}.git", str(work))
        git("checkout", "--quiet", "-b", branch, cwd=work)
        for name, text in files.items():
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            (work / name).write_text(text)
        git("add", "-A", cwd=work)
        git("commit", "--quiet", "-m", message, cwd=work)
        git("push", "--quiet", "origin", branch, cwd=work)
        return git("rev-parse", "HEAD", cwd=work)


@pytest.fixture(name="pyworld")
def pyworld_fixture(tmp_path: Path) -> Iterator[PyWorld]:
    private, public = rsa_pair()
    sim = Simulator(tmp_path / "github")
    recorder = Recorder(create_app(sim))
    server = serve_in_thread(recorder, name="simulator-pygithub")
    sim.base_url = server.url
    try:
        sim.register_app(APP_ID, "otto", public)
        sim.create_user(OWNER)
        for login in ("bob", "carol"):
            sim.create_user(login)
        sim.create_user(ORG, type="Organization")
        sim.create_repo(OWNER, REPO, FILES)
        sim.set_permission(OWNER, REPO, "bob", "write")
        sim.set_permission(OWNER, REPO, "carol", "read")
        installation = sim.install_app(APP_ID, OWNER)
        org_installation = sim.install_app(APP_ID, ORG)
        yield PyWorld(sim, server.url, recorder, installation, org_installation, private, tmp_path)
    finally:
        sim.close()
        server.stop()


def test_pygithub_maintainer_story(pyworld: PyWorld) -> None:
    w, sim = pyworld, pyworld.sim
    # --- the maintainer (a user token) sets up labels and files issues ------------------------------------
    with w.user(OWNER) as alice:
        repo = alice.get_repo(f"{OWNER}/{REPO}")
        otto = repo.create_label("otto", "5319e7", "Otto works on it")
        first = repo.create_label("good first issue", "7057FF")
        with pytest.raises(GithubException) as err:
            repo.create_label("OTTO", "000000")  # names are unique regardless of case
        assert err.value.status == 422
        assert err.value.data["errors"][0]["code"] == "already_exists"
        assert sorted(lbl.name for lbl in repo.get_labels()) == ["good first issue", "otto"]
        assert repo.get_label("good first issue").color == "7057ff"
        issue = repo.create_issue(title="Add subtract", body="Please add `sub`.", labels=[first])
        other = repo.create_issue(title="Unrelated")
        issue.add_to_labels(otto)
        assert [i.number for i in repo.get_issues(state="open", labels=[otto])] == [issue.number]
        assert [i.number for i in repo.get_issues()] == [other.number, issue.number]  # newest first
        issue.create_comment("Otto, please take this one.")
        assert repo.get_collaborator_permission("bob") == "write"
        issue.edit(body="Please add `sub(a, b)`.")
        issue.remove_from_labels(first)
        assert [lbl.name for lbl in issue.get_labels()] == ["otto"]
    assert [d.payload["label"]["name"] for d in sim.deliveries_of("issues", "labeled")] == [
        "good first issue",
        "otto",
    ]
    # a reader may file issues, but the labels they ask for are dropped (GitHub: push access needed)
    with w.user("carol") as carol:
        filed = carol.get_repo(f"{OWNER}/{REPO}").create_issue(title="Bug?", labels=["otto"])
        assert filed.labels == []
        assert sim.issue(OWNER, REPO, filed.number).labels == []

    # --- the App: JWT endpoints, then an installation token (PyGithub mints it itself) ---------------------
    app_auth = Auth.AppAuth(APP_ID, w.private_key)
    with GithubIntegration(auth=app_auth, base_url=w.api, retry=None, **NO_THROTTLE) as gi:
        assert gi.get_app().slug == "otto"
        assert sorted(i.id for i in gi.get_installations()) == sorted(
            [w.installation_id, w.org_installation_id]
        )
        assert gi.get_repo_installation(OWNER, REPO).id == w.installation_id
        assert gi.get_user_installation(OWNER).id == w.installation_id
        assert gi.get_org_installation(ORG).id == w.org_installation_id
        assert gi.get_app_installation(w.installation_id).id == w.installation_id
        with pytest.raises(GithubException) as err:
            gi.get_org_installation(OWNER)  # a user, not an organization
        assert err.value.status == 404
        gh = gi.get_github_for_installation(w.installation_id)
        repo = gh.get_repo(f"{OWNER}/{REPO}")
        mine = repo.get_issue(issue.number).create_comment("Working on it.")
        mine.create_reaction("rocket")
        mine.edit("On it.")
        repo.get_issue(issue.number).create_reaction("eyes")
        assert [r.content for r in repo.get_issue(issue.number).get_reactions()] == ["eyes"]
        readme = repo.get_contents("README.md")
        assert not isinstance(readme, list)
        assert readme.decoded_content == FILES["README.md"].encode()
        assert repo.get_branch("main").commit.sha == sim.branches(OWNER, REPO)["main"]
        bodies = [c.body for c in repo.get_issues_comments()]
        assert bodies == ["Otto, please take this one.", "On it."]
        assert [c.user.login for c in repo.get_issue(issue.number).get_comments()] == [OWNER, "otto[bot]"]

        # bob pushes a branch over git; the App opens the pull request
        head = w.push_branch("bob", "sub", {"src/sub.py": "def sub(a, b):\n    return a - b\n"}, "Add sub")
        pr = repo.create_pull(title="Add sub", body=f"Closes #{issue.number}", head="sub", base="main")
        assert pr.user.login == "otto[bot]"
        assert pr.head.sha == head
        assert pr.is_merged() is False
        assert [p.number for p in repo.get_pulls(state="open", head=f"{OWNER}:sub")] == [pr.number]
        assert [f.filename for f in pr.get_files()] == ["src/sub.py"]
        assert repo.get_git_ref("heads/sub").object.sha == head
        run = repo.create_check_run(name="otto/verify", head_sha=head, status="in_progress")
        run.edit(conclusion="success", output={"title": "ok", "summary": "checks passed"})
        assert [(r.name, r.conclusion) for r in repo.get_commit(head).get_check_runs()] == [
            ("otto/verify", "success")
        ]
        with pytest.raises(GithubException) as err:
            pr.create_review(body="self-approval", event="APPROVE")
        assert err.value.status == 422
        assert err.value.data["errors"] == ["Can not approve your own pull request"]
        assert sim.reviews(OWNER, REPO, pr.number) == []

        # the maintainer approves as a user
        with w.user(OWNER) as alice:
            theirs = alice.get_repo(f"{OWNER}/{REPO}").get_pull(pr.number)
            review = theirs.create_review(body="LGTM", event="APPROVE")
            assert theirs.get_review(review.id).state == "APPROVED"
            assert [r.id for r in theirs.get_reviews()] == [review.id]

        merged = pr.merge(merge_method="squash", commit_title=f"Add sub (#{pr.number})")
        assert merged.merged is True
        assert pr.is_merged() is True
        commit = repo.get_commit(merged.sha)
        assert commit.commit.message == f"Add sub (#{pr.number})"
        assert [f.filename for f in commit.files] == ["src/sub.py"]
        assert (commit.stats.additions, commit.stats.deletions) == (2, 0)
        assert next(c.sha for c in repo.get_commits()) == merged.sha
        assert [c.sha for c in repo.get_commits(path="src/sub.py")] == [merged.sha]
        assert [c.sha for c in pr.get_commits()] == [head]
        with pytest.raises(GithubException) as err:
            repo.get_commit("0" * 40)
        assert err.value.status == 422
        repo.get_git_ref("heads/sub").delete()
        assert "sub" not in sim.branches(OWNER, REPO)
        repo.get_issue(issue.number).edit(state="closed", state_reason="completed")
        assert [i.number for i in repo.get_issues(state="closed")] == [pr.number, issue.number]

        # the rate limit counts this installation's REST calls (not /rate_limit itself)
        limits = gh.get_rate_limit()
        counted = sum(
            1
            for c in sim.calls
            if c.actor == f"installation:{w.installation_id}" and c.kind == "rest" and c.path != "/rate_limit"
        )
        assert limits.resources.core.limit == 5000
        assert limits.resources.core.used == counted > 10
        assert limits.resources.core.remaining == 5000 - counted
        assert gh.rate_limiting == (5000 - counted, 5000)  # from the x-ratelimit-* headers
        gh.close()

    assert [d.payload["pull_request"]["merged"] for d in sim.deliveries_of("pull_request", "closed")] == [
        True
    ]
    # every answer PyGithub got is one GitHub documents, in GitHub's shape
    exchanges = w.recorder.exchanges
    found = [p for e in exchanges for p in problems(e)]
    assert not found, "\n".join(found)
    assert len(exchanges) >= 60, len(exchanges)
    if os.environ.get("SIM_REPORT"):
        ops = {(e.method, operation_for(e.method, e.path)) for e in exchanges}
        print(f"\n{len(exchanges)} calls, {len(ops)} operations, all in GitHub's documented shapes")
