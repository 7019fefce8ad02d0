"""GraphQL reaches GitHub where GitHub serves it, derived from ``OTTO_GITHUB_API_URL`` alone: on GitHub
Enterprise Server (``https://host/api/v3`` → ``https://host/api/graphql``, the simulator's own layout) and on
github.com's layout (``https://api.github.com`` → ``https://api.github.com/graphql``, the simulator behind a
front that serves REST at the root). Otto's real App client (githubkit) marks a draft PR ready both ways."""

from __future__ import annotations

import pytest
from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

from app.github_auth import GitHubApp
from app.serve_thread import serve_in_thread
from app.settings import Settings
from tests.conftest_sim import APP_ID, OWNER, REPO, Servers, World, sim_servers_fixture, world_fixture  # noqa: F401

READY = (
    "mutation($id: ID!) "
    "{ markPullRequestReadyForReview(input: {pullRequestId: $id}) { pullRequest { isDraft } } }"
)


class DotcomLayout:
    """api.github.com's layout in front of the simulator: REST at the root, GraphQL at ``/graphql``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = "/api/graphql" if scope["path"] == "/graphql" else "/api/v3" + scope["path"]
            scope = {**scope, "path": path, "raw_path": path.encode()}
        await self.app(scope, receive, send)


def draft_pull(world: World, branch: str) -> tuple[int, str]:
    world.sim.push_commit(OWNER, REPO, branch, {f"{branch}.txt": "x\n"}, branch, "bob")
    with world.client(world.installation_token()) as gh:
        pr = gh.rest.pulls.create(OWNER, REPO, title=branch, head=branch, base="main", draft=True).parsed_data
    return pr.number, pr.node_id


async def mark_ready(api_url: str, world: World, node_id: str) -> dict[str, object]:
    settings = Settings(
        _env_file=None,
        github_app_id=APP_ID,
        github_private_key=SecretStr(world.private_key),
        github_api_url=api_url,
    )
    gh = await GitHubApp(settings).installation_client(world.installation_id)
    return await gh.async_graphql(READY, {"id": node_id})


@pytest.mark.parametrize("api_suffix", ["/api/v3", "/api/v3/"])
async def test_ghes_graphql_url_is_derived_from_the_api_url(world: World, api_suffix: str) -> None:
    number, node_id = draft_pull(world, "ghes")
    data = await mark_ready(world.url + api_suffix, world, node_id)
    assert data == {"markPullRequestReadyForReview": {"pullRequest": {"isDraft": False}}}
    assert world.sim.pull(OWNER, REPO, number).draft is False
    graphql = [c for c in world.sim.calls if c.kind == "graphql"]
    assert [(c.method, c.path, c.status, c.actor) for c in graphql] == [
        ("POST", "/graphql", 200, f"installation:{world.installation_id}")
    ]


async def test_dotcom_layout_graphql_is_at_the_api_root(world: World, sim_servers: Servers) -> None:
    front = serve_in_thread(DotcomLayout(sim_servers.app), name="dotcom-front")
    try:
        number, node_id = draft_pull(world, "dotcom")
        await mark_ready(front.url, world, node_id)
    finally:
        front.stop()
    assert world.sim.pull(OWNER, REPO, number).draft is False
    assert world.sim.count_calls("POST", "/graphql", 200) == 1
