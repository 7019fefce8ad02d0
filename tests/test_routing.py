"""Handlers that register themselves: the route table, its checks, and a new event added as one module."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import BaseModel

from app.contracts.messages import DeliveryRequest
from app.events import Event, IssuesLabeled
from app.intake import Router, peek_action
from app.routing import HandlerContext, Outcome, RouteConflict, Routes, ignored
from app.settings import Settings
from handlers import ROUTES, discover


class NoHandoff:
    async def submit(self, delivery_id: str, request: DeliveryRequest) -> bool:
        raise AssertionError("nothing may be handed off here")


def user(login: str) -> dict[str, object]:
    """A sender as GitHub sends it (every field githubkit's ``SimpleUser`` requires)."""
    urls: tuple[str, ...] = ("url", "html_url", "followers_url", "following_url", "gists_url", "starred_url")
    urls += ("subscriptions_url", "organizations_url", "repos_url", "events_url", "received_events_url")
    fields: dict[str, object] = {"login": login, "id": 1, "node_id": "U_1", "avatar_url": ""}
    return fields | {u: "" for u in urls} | {"gravatar_id": None, "type": "User", "site_admin": False}


def settings() -> Settings:
    return Settings(_env_file=None, trigger_label="otto")


def test_the_shipped_table_is_what_otto_acts_on() -> None:
    pairs = {(r.event, r.action) for r in ROUTES}
    assert pairs == {
        ("issues", "labeled"),
        ("issues", "closed"),
        ("issues", "edited"),
        ("issues", "unlabeled"),
        ("issue_comment", "created"),
        ("pull_request", "closed"),
        ("pull_request", "reopened"),
        ("pull_request", "ready_for_review"),
        ("pull_request", "synchronize"),
        ("pull_request_review", "submitted"),
        ("push", None),
        ("check_suite", "completed"),
        ("check_run", "completed"),
        *(
            ("installation", a)
            for a in ("created", "deleted", "suspend", "unsuspend", "new_permissions_accepted")
        ),
        ("installation_repositories", "added"),
        ("installation_repositories", "removed"),
    }
    labeled = ROUTES.lookup("issues", "labeled")
    assert labeled is not None
    assert labeled.model is IssuesLabeled
    assert ROUTES.ignores("issues", "opened")
    assert ROUTES.ignores("star", "created")
    assert not ROUTES.ignores("pull_request", "closed")
    assert ROUTES.ignores("pull_request", "edited")


def test_registering_reads_the_model_from_the_annotation_or_refuses() -> None:
    routes = Routes()

    @routes.register("issues", action=["opened", "edited"])
    async def opened(ctx: HandlerContext, event: IssuesLabeled) -> Outcome:
        return ignored("test")

    assert {(r.action, r.model) for r in routes} == {("opened", IssuesLabeled), ("edited", IssuesLabeled)}

    with pytest.raises(TypeError, match="must declare its payload model"):

        @routes.register("push")
        async def untyped(ctx: HandlerContext, event: object) -> Outcome:
            return ignored("test")

    class Push(BaseModel):
        ref: str

    @routes.register("push", model=Push)
    async def explicit(ctx: HandlerContext, event: object) -> Outcome:
        return ignored("test")

    push = routes.lookup("push", "")
    assert push is not None
    assert push.model is Push
    assert push.action is None
    assert not routes.ignores("push", "anything")  # a route for every action: nothing ignored early


def test_the_same_pair_handled_twice_is_an_error() -> None:
    a, b = Routes(), Routes()

    @a.register("issues", action="labeled")
    async def first(ctx: HandlerContext, event: IssuesLabeled) -> Outcome:
        return ignored("a")

    @b.register("issues", action="labeled")
    async def second(ctx: HandlerContext, event: IssuesLabeled) -> Outcome:
        return ignored("b")

    with pytest.raises(RouteConflict, match=r"issues\.labeled is handled twice"):
        Routes().include(a).include(b)


def test_the_action_is_peeked_only_from_githubs_prefix() -> None:
    assert peek_action(b'{"action":"labeled","issue":{}}') == "labeled"
    assert peek_action(b'{"issue":{"action":"x"},"action":"labeled"}') is None
    assert peek_action(b'{ "action": "labeled"}') is None  # other spacing: parse it
    assert peek_action(b'{"action":"la\\u0062eled"}') is None  # escapes: parse it
    assert peek_action(b'{"action":"' + b"a" * 100 + b'"}') is None
    assert peek_action(b'{"action":"caf\xc3\xa9"}') is None


async def test_a_new_event_is_one_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "more_handlers"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "stars.py").write_text(
        textwrap.dedent(
            '''
            """``star``: someone starred the repository."""
            from app.events import Event
            from app.routing import HandlerContext, Outcome, Routes

            routes = Routes()
            seen: list[str] = []


            class StarCreated(Event):
                starred_at: str


            @routes.register("star", action="created")
            async def created(ctx: HandlerContext, event: StarCreated) -> Outcome:
                seen.append(f"{ctx.delivery_id}: {event.sender.login} at {event.starred_at}")
                return Outcome(202, "star noted")
            '''
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    routes = discover("more_handlers")
    router = Router(settings(), NoHandoff(), Routes().include(ROUTES).include(routes))
    sender = user("mona")
    body = {"action": "created", "starred_at": "2026-01-01T00:00:00Z", "sender": sender}

    outcome = await router.dispatch("star", "d-1", json.dumps(body).encode())
    assert outcome == Outcome(202, "star noted")
    assert sys.modules["more_handlers.stars"].seen == ["d-1: mona at 2026-01-01T00:00:00Z"]
    deleted = await router.dispatch("star", "d-2", json.dumps({**body, "action": "deleted"}).encode())
    assert deleted.status == 202
    assert deleted.quiet
    missing = await router.dispatch(
        "star", "d-3", json.dumps({"action": "created", "sender": sender}).encode()
    )
    assert missing.status == 400
    assert "starred_at" in missing.message
    # the shipped handlers still answer through the merged table
    assert (await router.dispatch("issues", "d-4", b'{"action":"opened"}')).status == 202
    assert issubclass(sys.modules["more_handlers.stars"].StarCreated, Event)
