"""Runs across repositories (issue #22), the first part: the repositories a run's settings name
(`repositories:` in `.github/otto.yml`) are checked against GitHub before planning — the installation must
reach each, and the person who labeled the issue must be allowed there what the run would do. What is left
out or narrowed is said in the status comment; the rest is listed there, the planner reads their files and
every attempt reads their checkouts (read-only) — except a private repository's when the issue's repository
is public (a canary checked in every model request and comment, and absent from the sandbox)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from app.artifacts import store_from_settings
from app.domain.run import LinkedRepoState, RunState, TaskStatus
from tests.e2e import Otto, Repo, eventually, label_new_issue, settled, wait_for_state
from tests.mission_control import sign_in
from tests.test_failures_e2e import SINGLE, SINGLE_AGENTS, create, run, scenario, task

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
    (plan2,) = [
        q
        for q in otto.world.model.requests
        if q.role == "plan" and q.run == f"{r.owner}/{r.name}#{second}".lower()
    ]
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
    # nor in any artifact of the run, nor in its PR
    store = store_from_settings(otto.settings)
    keys = [i.key for i in store.list(f"otto-{rid}-{number}/")]
    assert keys
    assert all(CANARY not in (store.get_text(k) or "") for k in keys)
    assert all(CANARY not in (p.body or "") for p in sim.pulls(r.owner, r.name))


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


API_CORE = "def version():\n    return 1\n"
API_TEST = "from api.core import version\n\n\ndef test_version():\n    assert version()\n"
API_HELLO = 'def version():\n    return 1\n\n\ndef hello():\n    return "hi"\n'


@dataclass
class ChangeSet:
    r: Repo
    rid: int
    number: int
    state: RunState


async def change_set(otto: Otto, repo: Callable[..., Repo]) -> ChangeSet:
    """An issue in the web repository planned into an API task (in acme/api) and a web task depending on it,
    whose check imports the API from the mounted dependency; run until both wait for review."""
    r = repo()
    sim, m = otto.sim, r.maintainer
    mount = f"/otto/repos/{r.owner}/api"
    link = f"  - {{repo: {r.owner}/api, access: write}}\n"
    web_settings = f"verify: PYTHONPATH={mount} python -m pytest -q\nrepositories:\n{link}"
    sim.push_commit(r.owner, r.name, "main", {".github/otto.yml": web_settings}, "Link the API", m)
    sim.create_repo(
        r.owner,
        "api",
        {
            "api/__init__.py": "",
            "api/core.py": API_CORE,
            "tests/test_core.py": API_TEST,
            ".github/otto.yml": "verify: python -m pytest -q\n",
        },
    )
    sim.set_permission(r.owner, "api", m, "write")
    api_task = {**task("t1", "Add hello to the API"), "repo": f"{r.owner}/api"}
    web_task = task("t2", "Greet with the API's hello", "t1")
    agents = {
        "t1": [create("api/core.py", API_HELLO), {"text": "Added api.core.hello()."}],
        "t2": [
            create(
                "tests/test_uses_api.py",
                'from api.core import hello\n\n\ndef test_hello():\n    assert hello() == "hi"\n',
            ),
            {"text": "The web side uses hello()."},
        ],
    }
    otto.world.model.load(scenario([api_task, web_task], agents))
    number, rid = label_new_issue(
        sim, r, title="Say hi through the API", body="Add hello() to the API and use it."
    )
    state = await wait_for_state(otto.client, rid, number, settled)
    return ChangeSet(r, rid, number, state)


async def test_a_change_set_across_two_repositories_checks_the_client_against_the_new_api_and_merges_in_order(
    otto: Otto, repo: Callable[..., Repo]
) -> None:
    cs = await change_set(otto, repo)
    r, rid, number, state = cs.r, cs.rid, cs.number, cs.state
    sim, m = otto.sim, r.maintainer
    t1, t2 = state.record("t1"), state.record("t2")
    assert t1.repo is not None
    assert (t1.repo.full_name, t1.status, t2.repo, t2.status) == (
        f"{r.owner}/api",
        TaskStatus.PASSED,
        None,
        TaskStatus.PASSED,
    )
    (api_pr,) = sim.pulls(r.owner, "api")
    (web_pr,) = sim.pulls(r.owner, r.name)
    assert api_pr.head_ref == t1.branch
    assert web_pr.base_ref == "main"  # not stacked on a branch of another repository
    assert f"Part of {r.owner}/{r.name}#{number} — task **t1**" in api_pr.body
    assert api_pr.title == f"[Otto {r.owner}/{r.name}#{number}] Add hello to the API"
    assert (
        f"> Part of a change across repositories: {r.owner}/api#{api_pr.number} merges first, then this "
        "(it is checked against that branch)." in web_pr.body
    )
    # the web task's checks ran against the API task's branch, mounted read-only (they pass only with hello())
    assert "2 passed" in t2.verify_log_tail  # its own test and the one importing api.core.hello
    status = await eventually(
        lambda: next(
            (
                c.body
                for c in sim.comments(r.owner, r.name, number)
                if f"[{r.owner}/api#{api_pr.number}]" in c.body
            ),
            None,
        )
    )
    # the plan grouped by repository: the issue's first, then the API's
    assert status.index(f"**`{r.owner}/{r.name}`**") < status.index("**t2** Greet with the API's hello")
    assert status.index(f"**`{r.owner}/api`**") < status.index("**t1** Add hello to the API")

    # Mission Control shows the set: the repositories, each task's repository and its PR there
    async with httpx.AsyncClient(base_url=otto.server.url, timeout=30) as http:
        await sign_in(http, m)
        page = (await http.get(f"/runs/{rid}/{number}")).text
    assert (
        f"Repositories: <strong>{r.owner}/{r.name}</strong> (the issue's), <strong>{r.owner}/api</strong>"
        in page
    )
    assert f'<span class="repo">{r.owner}/api</span>' in page
    assert f'class="pr">PR {r.owner}/api#{api_pr.number}</a>' in page

    # the web PR approved first waits for the API's; the API's approval merges both, in order
    sim.submit_review(r.owner, r.name, web_pr.number, m, "APPROVED", commit_id=t2.head_sha)
    waiting = await eventually(
        lambda: next(
            (c.body for c in sim.comments(r.owner, r.name, web_pr.number) if "will merge after" in c.body),
            None,
        )
    )
    assert f"Approved. This will merge after {r.owner}/api#{api_pr.number}." in waiting
    assert sim.read_file(r.owner, r.name, "main", "tests/test_uses_api.py") is None
    sim.submit_review(r.owner, "api", api_pr.number, m, "APPROVED", commit_id=t1.head_sha)
    done = await wait_for_state(otto.client, rid, number, lambda s: s.phase.final)
    assert done.phase.value == "done", done.reason
    assert sim.read_file(r.owner, "api", "main", "api/core.py") == API_HELLO
    assert sim.read_file(r.owner, r.name, "main", "tests/test_uses_api.py") is not None
    # between the two merges the web task was checked again against the API's merged main
    web, api = f"{r.owner}/{r.name}#{web_pr.number}", f"{r.owner}/api#{api_pr.number}"
    again = f"🔁 {web} (t2) checked again against {api} merged"
    assert f"{again}: ✅ they pass." in done.notices
    (check,) = [c for c in sim.check_runs(r.owner, r.name, t2.head_sha) if c.name == "otto/verify"]
    assert f"checked again after {r.owner}/api#{api_pr.number} merged" in check.output["summary"]
    api_merge = sim.pull(r.owner, "api", api_pr.number).merged_at
    web_merge = sim.pull(r.owner, r.name, web_pr.number).merged_at
    assert api_merge is not None
    assert web_merge is not None
    assert api_merge <= web_merge


async def test_a_change_set_half_merged_says_what_merged_where_and_what_did_not(
    otto: Otto, repo: Callable[..., Repo]
) -> None:
    cs = await change_set(otto, repo)
    r, sim, m = cs.r, otto.sim, cs.r.maintainer
    t1, t2 = cs.state.record("t1"), cs.state.record("t2")
    (api_pr,) = sim.pulls(r.owner, "api")
    (web_pr,) = sim.pulls(r.owner, r.name)
    sim.submit_review(r.owner, r.name, web_pr.number, m, "APPROVED", commit_id=t2.head_sha)
    await eventually(
        lambda: any("will merge after" in c.body for c in sim.comments(r.owner, r.name, web_pr.number))
    )
    # meanwhile someone makes the web PR conflict with its main
    sim.push_commit(r.owner, r.name, "main", {"tests/test_uses_api.py": "# theirs\n"}, "Theirs", m)
    sim.submit_review(r.owner, "api", api_pr.number, m, "APPROVED", commit_id=t1.head_sha)
    api, web = f"{r.owner}/api#{api_pr.number}", f"{r.owner}/{r.name}#{web_pr.number}"
    said = await eventually(
        lambda: next(
            (n for n in (otto_state_notices(otto, cs)) if n.startswith("⚠️ This change is half merged")), None
        )
    )
    assert said.startswith(f"⚠️ This change is half merged across repositories: {api} merged; {web} did not (")
    assert t1.head_sha is not None
    assert f"@{m} approved {api} (t1): ✅ merged {t1.head_sha[:7]}." in otto_state_notices(otto, cs)
    assert said.endswith(
        f"Resolve that and approve {web} again, or revert what merged (its merge commit) by hand."
    )
    assert sim.read_file(r.owner, "api", "main", "api/core.py") == API_HELLO
    assert sim.pull(r.owner, r.name, web_pr.number).merged_at is None

    # `/otto revert` opens a PR in acme/api taking the merged part back out
    sim.comment(r.owner, r.name, cs.number, "/otto revert", m)
    reverted = await eventually(
        lambda: next((n for n in otto_state_notices(otto, cs) if n.startswith("↩️")), None), within=90
    )
    revert_pr = next(p for p in sim.pulls(r.owner, "api") if p.number != api_pr.number)
    assert reverted == (
        f"↩️ @{m} asked to revert what merged: {r.owner}/api#{revert_pr.number} (reverts #{api_pr.number})."
    )
    assert revert_pr.base_ref == "main"
    assert sim.read_file(r.owner, "api", revert_pr.head_ref, "api/core.py") == API_CORE
    assert f"Reverts #{api_pr.number} (Add hello to the API)" in (revert_pr.body or "")
    # a second `/otto revert` opens nothing new (the branch and its PR are looked up first)
    sim.comment(r.owner, r.name, cs.number, "/otto revert", m)
    await eventually(lambda: sum(n.startswith("↩️") for n in otto_state_notices(otto, cs)) == 2, within=90)
    assert len(sim.pulls(r.owner, "api")) == 2


def otto_state_notices(otto: Otto, cs: ChangeSet) -> list[str]:
    bodies = [c.body for c in otto.sim.comments(cs.r.owner, cs.r.name, cs.number) if "otto:status" in c.body]
    return [line.removeprefix("> ") for b in bodies for line in b.splitlines() if line.startswith("> ")]


async def test_a_private_issue_does_not_plan_tasks_into_a_public_repository_without_its_consent(
    otto: Otto, repo: Callable[..., Repo]
) -> None:
    otto.world.model.load(scenario(SINGLE, SINGLE_AGENTS))
    r = repo()  # private
    sim, m = otto.sim, r.maintainer
    link = f"repositories:\n  - {{repo: {r.owner}/site, access: write}}\n"
    sim.push_commit(
        r.owner, r.name, "main", {".github/otto.yml": f"verify: python -m pytest -q\n{link}"}, "Link", m
    )
    sim.create_repo(r.owner, "site", {"index.md": "# site\n"}, private=False)
    sim.set_permission(r.owner, "site", m, "write")
    number, rid = label_new_issue(sim, r)
    state = await wait_for_state(otto.client, rid, number, settled)
    assert [(x.repo, x.access) for x in state.linked] == [(f"{r.owner}/site", "read")]
    assert (
        f"🔒 `{r.owner}/site` is public and this issue's repository is private: no task changes it (this "
        "repository's `share_with:` can allow it)." in state.notices
    )
    (plan,) = [
        q
        for q in otto.world.model.requests
        if q.role == "plan" and q.run == f"{r.owner}/{r.name}#{number}".lower()
    ]
    assert "Tasks may change this repository" not in json.dumps(plan.body)
    # with this repository's consent, tasks may change it
    consent = f"verify: python -m pytest -q\n{link}share_with: [{r.owner}/site]\n"
    sim.push_commit(r.owner, r.name, "main", {".github/otto.yml": consent}, "Consent", m)
    second, _ = label_new_issue(sim, r, title="Again")
    again = await wait_for_state(otto.client, rid, second, settled)
    assert [(x.repo, x.access) for x in again.linked] == [(f"{r.owner}/site", "write")]


async def test_what_a_task_learned_in_a_private_repository_reaches_only_where_that_repository_consents(
    otto: Otto, repo: Callable[..., Repo]
) -> None:
    r = repo()
    sim, m = otto.sim, r.maintainer
    sim.repo(r.owner, r.name).private = False  # the issue's repository: public
    links = f"  - {{repo: {r.owner}/vault, access: write}}\n  - {{repo: {r.owner}/site, access: write}}\n"
    sim.push_commit(
        r.owner, r.name, "main", {".github/otto.yml": f"verify: 'true'\nrepositories:\n{links}"}, "Link", m
    )
    consent = f"share_with: [{r.owner}/{r.name}]\nverify: 'true'\n"  # the vault consents to the web only
    sim.create_repo(r.owner, "vault", {"notes.md": "v\n", ".github/otto.yml": consent})
    sim.create_repo(
        r.owner, "site", {"index.md": "s\n", ".github/otto.yml": "verify: 'true'\n"}, private=False
    )
    for name in ("vault", "site"):
        sim.set_permission(r.owner, name, m, "write")
    plan = [
        {**task("t1", "Note it in the vault"), "repo": f"{r.owner}/vault"},
        {**task("t2", "Note it on the site", "t1"), "repo": f"{r.owner}/site"},
        task("t3", "Note it in the web", "t1"),
    ]
    agents = {
        "t1": [create("notes.md", "v2\n"), {"text": f"Vault notes updated; the secret is {CANARY}."}],
        "t2": [create("index.md", "s2\n"), {"text": "Site updated."}],
        "t3": [create("NOTES.md", "w\n"), {"text": "Web updated."}],
    }
    otto.world.model.load(scenario(plan, agents))
    number, rid = label_new_issue(sim, r)
    state = await wait_for_state(otto.client, rid, number, settled)
    assert [t.status for t in state.tasks] == [TaskStatus.PASSED] * 3
    asked = {key: json.dumps(otto.world.model.requests_for("agent", key)[0].body) for key in ("t2", "t3")}
    assert CANARY not in asked["t2"]  # the public site: the vault never consented to it
    assert CANARY in asked["t3"]  # the web: the vault's own settings consent
    (site_pr,) = sim.pulls(r.owner, "site")
    assert CANARY not in (site_pr.body or "")


async def test_plan_approval_and_stop_across_the_set(otto: Otto, repo: Callable[..., Repo]) -> None:
    r = repo()
    sim, m = otto.sim, r.maintainer
    link = f"repositories:\n  - {{repo: {r.owner}/api, access: write}}\nplan_approval: true\n"
    sim.push_commit(r.owner, r.name, "main", {".github/otto.yml": f"verify: 'true'\n{link}"}, "Link", m)
    sim.create_repo(r.owner, "api", {"api.py": "X = 1\n", ".github/otto.yml": "verify: 'true'\n"})
    sim.set_permission(r.owner, "api", m, "write")
    plan = [{**task("t1", "Change the API"), "repo": f"{r.owner}/api"}, task("t2", "Use it", "t1")]
    agents = {
        "t1": [{**create("api.py", "X = 2\n"), "hold": "set-stop"}, {"text": "Changed."}],
        "t2": [create("use.py", "Y = 1\n"), {"text": "Used."}],
    }
    otto.world.model.load(scenario(plan, agents))
    number, rid = label_new_issue(sim, r)
    state = await wait_for_state(otto.client, rid, number, lambda s: s.phase.value == "plan_review")
    assert [(t.task.id, t.repo.full_name if t.repo else None) for t in state.tasks] == [
        ("t1", f"{r.owner}/api"),
        ("t2", None),
    ]
    sim.comment(r.owner, r.name, number, "/otto go", m)
    await otto.world.model.held("set-stop")  # the API task's agent is at work
    sim.comment(r.owner, r.name, number, "/otto stop", m)
    await wait_for_state(otto.client, rid, number, lambda s: s.stop_requested_by is not None)
    otto.world.model.release("set-stop")
    done = await wait_for_state(otto.client, rid, number, lambda s: s.phase.final)
    assert done.phase.value == "cancelled"
    assert (done.record("t2").status, done.record("t2").note) == (
        TaskStatus.SKIPPED,
        "not started — the run was stopped",
    )
    assert sim.pulls(r.owner, "api") == []  # nothing pushed for review in the API
    assert sim.read_file(r.owner, "api", "main", "api.py") == "X = 1\n"
