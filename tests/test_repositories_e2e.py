"""Runs across repositories (issue #22), the first part: the repositories a run's settings name
(`repositories:` in `.github/otto.yml`) are checked against GitHub before planning — the installation must
reach each, and the person who labeled the issue must be allowed there what the run would do. What is left
out or narrowed is said in the status comment; the rest is listed there."""

from __future__ import annotations

from collections.abc import Callable

from app.domain.run import LinkedRepoState
from tests.e2e import Otto, Repo, eventually, label_new_issue, settled, wait_for_state
from tests.test_failures_e2e import SINGLE, SINGLE_AGENTS, scenario

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
