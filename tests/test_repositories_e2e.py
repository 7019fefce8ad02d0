"""Runs across repositories (issue #22), the first part: the repositories a run's settings name
(`repositories:` in `.github/otto.yml`) are checked against GitHub before planning — the installation must
reach each, and the person who labeled the issue must be allowed there what the run would do. What is left
out or narrowed is said in the status comment; the rest is listed there, the planner reads their files and
every attempt reads their checkouts (read-only) — except a private repository's when the issue's repository
is public (a canary checked in every model request and comment, and absent from the sandbox)."""

from __future__ import annotations

import json
from collections.abc import Callable

from app.domain.run import LinkedRepoState
from tests.e2e import Otto, Repo, eventually, label_new_issue, settled, wait_for_state
from tests.test_failures_e2e import SINGLE, SINGLE_AGENTS, run, scenario

LINKED = """verify: python -m pytest -q
repositories:
  - {repo: ORG/api, access: write}
  - {repo: ORG/docs}
  - {repo: elsewhere/ghost, access: write}
  - {repo: ORG/secret}
"""


async def test_the_repositories_a_run_may_use_are_checked_against_github_and_said(
    otto: Otto, repo: Callable[..., Repo]
) -> None:
    otto.world.model.load(scenario(SINGLE, SINGLE_AGENTS))
    r = repo()
    sim = otto.sim
    settings = LINKED.replace("ORG", r.owner)
    sim.push_commit(
        r.owner, r.name, "main", {".github/otto.yml": settings}, "Link repositories", r.maintainer
    )
    for name in ("api", "docs", "secret"):
        sim.create_repo(r.owner, name, {"README.md": f"# {name}\n"})
    sim.set_permission(r.owner, "api", r.maintainer, "read")  # asked for write: the labeler may only read
    sim.set_permission(r.owner, "docs", r.maintainer, "triage")  # read is enough for read access
    # `secret`: the labeler has no access; `elsewhere/ghost`: not in this installation (another account)
    sim.create_user("elsewhere", type="Organization")
    sim.create_repo("elsewhere", "ghost", {"README.md": "# ghost\n"})
    number, rid = label_new_issue(sim, r)

    state = await wait_for_state(otto.client, rid, number, settled)
    assert [(x.repo, x.access, x.private) for x in state.linked] == [
        (f"{r.owner}/api", "read", True),
        (f"{r.owner}/docs", "read", True),
    ]
    assert all(isinstance(x, LinkedRepoState) and x.repo_id > 0 for x in state.linked)
    m = r.maintainer
    said = [
        f"🔗 `{r.owner}/api` is used read-only: @{m} can't write to it (read), so no task changes it.",
        "🔗 `elsewhere/ghost` is left out: this App's installation does not reach it (add it there).",
        f"🔗 `{r.owner}/secret` is left out: @{m} has no access to it.",
    ]
    assert [n for n in state.notices if n.startswith("🔗")] == said

    def status() -> str | None:
        bodies = [c.body for c in sim.comments(r.owner, r.name, number) if "otto:status" in c.body]
        return next((b for b in bodies if "**Repositories:**" in b), None)

    body = await eventually(status)
    assert (
        f"**Repositories:** this one, `{r.owner}/api` (read only, private), `{r.owner}/docs` (read only, "
        "private)." in body
    )
    assert all(line in body for line in said)


CANARY = "canary_private_7d1e"


async def test_the_planner_reads_other_repositories_but_a_private_ones_never_reaches_a_public_issue(
    otto: Otto, repo: Callable[..., Repo]
) -> None:
    otto.world.model.load(scenario(SINGLE, SINGLE_AGENTS))
    r = repo()
    sim = otto.sim
    links = f"  - {{repo: {r.owner}/api}}\n  - {{repo: {r.owner}/vault}}\n"
    settings = f"verify: python -m pytest -q\nrepositories:\n{links}"
    sim.push_commit(
        r.owner, r.name, "main", {".github/otto.yml": settings}, "Link repositories", r.maintainer
    )
    sim.create_repo(r.owner, "api", {"api/client.py": "def get():\n    return 1\n"}, private=False)
    sim.create_repo(r.owner, "vault", {f"{CANARY}.py": f"TOKEN = '{CANARY}'\n"})
    for name in ("api", "vault"):
        sim.set_permission(r.owner, name, r.maintainer, "read")
    sim.repo(r.owner, r.name).private = False  # the issue's repository is public

    number, rid = label_new_issue(sim, r)
    state = await wait_for_state(otto.client, rid, number, settled)
    assert [(x.repo, x.shown) for x in state.linked] == [
        (f"{r.owner}/api", True),
        (f"{r.owner}/vault", False),
    ]
    withheld = (
        f"🔒 `{r.owner}/vault` is private and this issue's repository is public: nothing of it reaches this "
        "run's model, sandbox, comments or pull requests (its own `.github/otto.yml` can allow this "
        "repository with `share_with:`)."
    )
    assert withheld in state.notices
    runs = [q for q in otto.world.model.requests if q.run == f"{r.owner}/{r.name}#{number}".lower()]
    (plan,) = [q for q in runs if q.role == "plan"]
    assert f"Files in {r.owner}/api, another repository this run may read (1 of 1)" in json.dumps(plan.body)
    assert "api/client.py" in json.dumps(plan.body)
    assert all(CANARY not in json.dumps(q.body) for q in otto.world.model.requests)
    bodies = [c.body for c in sim.comments(r.owner, r.name, number)]
    assert all(CANARY not in b for b in bodies)
    assert any(f"`{r.owner}/vault` (read only, private, withheld)" in b for b in bodies)

    # the same issue in a private repository: the private repository's files are the planner's to read
    sim.repo(r.owner, r.name).private = True
    second, _ = label_new_issue(sim, r, title="Again, privately")
    again = await wait_for_state(otto.client, rid, second, settled)
    assert [x.shown for x in again.linked] == [True, True]
    (plan2,) = [q for q in otto.world.model.requests if q.role == "plan" and q.run.endswith(f"#{second}")]
    assert f"{CANARY}.py" in json.dumps(plan2.body)


async def test_an_attempt_reads_the_other_repositories_read_only_and_never_a_withheld_one(
    otto: Otto, repo: Callable[..., Repo]
) -> None:
    r = repo()
    sim = otto.sim
    links = f"  - {{repo: {r.owner}/api}}\n  - {{repo: {r.owner}/vault}}\n"
    settings = f"verify: python -m pytest -q\nrepositories:\n{links}"
    sim.push_commit(
        r.owner, r.name, "main", {".github/otto.yml": settings}, "Link repositories", r.maintainer
    )
    sim.create_repo(r.owner, "api", {"api/VERSION": "42\n"}, private=False)
    sim.create_repo(r.owner, "vault", {"key.txt": f"{CANARY}\n"})
    for name in ("api", "vault"):
        sim.set_permission(r.owner, name, r.maintainer, "read")
    sim.repo(r.owner, r.name).private = False
    root = f"/otto/repos/{r.owner}"
    agents = {
        "t1": [
            run(f"cat {root}/api/api/VERSION > seen.txt; cat {root}/vault/key.txt >> seen.txt 2>&1 || true"),
            run(f"echo tampered > {root}/api/api/VERSION 2>&1 || echo refused >> seen.txt"),
            {"text": "Recorded the API's version."},
        ]
    }
    otto.world.model.load(scenario(SINGLE, agents))
    number, rid = label_new_issue(sim, r)
    state = await wait_for_state(otto.client, rid, number, settled)
    seen = sim.read_file(r.owner, r.name, state.record("t1").branch, "seen.txt") or ""
    lines = seen.splitlines()
    assert lines[0] == "42"  # the public repository, read from its mount
    assert "No such file or directory" in lines[1]  # the private one is not there at all
    assert lines[-1] == "refused"  # read-only
    assert sim.read_file(r.owner, "api", "main", "api/VERSION") == "42\n"
    assert all(CANARY not in json.dumps(q.body) for q in otto.world.model.requests)
    prompt = json.dumps(otto.world.model.requests_for("agent", "t1")[0].body)
    assert f"{root}/api (`{r.owner}/api` at `main`)" in prompt
    assert "vault" not in prompt


async def test_a_private_repositorys_own_settings_can_share_it_with_a_public_one(
    otto: Otto, repo: Callable[..., Repo]
) -> None:
    otto.world.model.load(scenario(SINGLE, SINGLE_AGENTS))
    r = repo()
    sim = otto.sim
    settings = f"verify: python -m pytest -q\nrepositories:\n  - {{repo: {r.owner}/vault}}\n"
    sim.push_commit(
        r.owner, r.name, "main", {".github/otto.yml": settings}, "Link repositories", r.maintainer
    )
    consent = f"share_with: [{r.owner}/{r.name}]\n"
    sim.create_repo(r.owner, "vault", {f"{CANARY}.py": "X = 1\n", ".github/otto.yml": consent})
    sim.set_permission(r.owner, "vault", r.maintainer, "read")
    sim.repo(r.owner, r.name).private = False
    number, rid = label_new_issue(sim, r)
    state = await wait_for_state(otto.client, rid, number, settled)
    assert [(x.repo, x.private, x.shown) for x in state.linked] == [(f"{r.owner}/vault", True, True)]
    assert not any(n.startswith("🔒") for n in state.notices)
    (plan,) = [
        q
        for q in otto.world.model.requests
        if q.role == "plan" and q.run == f"{r.owner}/{r.name}#{number}".lower()
    ]
    assert f"{CANARY}.py" in json.dumps(plan.body)
    # a consent to some other repository is no consent to this one
    sim.push_commit(
        r.owner, "vault", "main", {".github/otto.yml": "share_with: [someone/else]\n"}, "Narrow", r.maintainer
    )
    second, _ = label_new_issue(sim, r, title="Again")
    again = await wait_for_state(otto.client, rid, second, settled)
    assert [x.shown for x in again.linked] == [False]
