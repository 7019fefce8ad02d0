"""Webhooks emitted by the simulator: GitHub's headers and signature, typed parsing by githubkit,
synchronous human deliveries, asynchronous App-caused deliveries, redelivery."""

from __future__ import annotations

import hashlib
import hmac

import githubkit.webhooks

from app.dev.simulator.webhooks import signature_256
from tests.conftest_sim import APP_ID, OWNER, REPO, SECRET, World, sim_servers_fixture, world_fixture  # noqa: F401

EXPECTED = {
    ("installation", "created"),
    ("issues", "opened"),
    ("issues", "labeled"),
    ("issues", "unlabeled"),
    ("issues", "closed"),
    ("issues", "reopened"),
    ("issue_comment", "created"),
    ("issue_comment", "edited"),
    ("pull_request", "opened"),
    ("pull_request", "edited"),
    ("pull_request", "labeled"),
    ("pull_request", "synchronize"),
    ("pull_request", "ready_for_review"),
    ("pull_request", "converted_to_draft"),
    ("pull_request", "closed"),
    ("pull_request", "reopened"),
    ("pull_request_review", "submitted"),
    ("check_run", "created"),
    ("check_run", "completed"),
    ("check_suite", "completed"),
    ("push", None),
}


def test_signature_matches_githubs_test_vector() -> None:
    assert signature_256(SECRET, b"Hello, World!") == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )


def exercise_every_event(world: World) -> None:
    sim = world.sim
    number = sim.create_issue(OWNER, REPO, "Add sub", "Please", "alice")
    sim.add_label(OWNER, REPO, number, "otto", "bob")
    sim.comment(OWNER, REPO, number, "/otto retry", "bob")
    head = sim.push_commit(
        OWNER, REPO, "otto/1/t1", {"src/sub.py": "def sub(a, b):\n    return a - b\n"}, "Add sub", "bob"
    )
    with world.client(world.installation_token()) as gh:
        comment = gh.rest.issues.create_comment(OWNER, REPO, number, body="status").parsed_data
        gh.rest.issues.update_comment(OWNER, REPO, comment.id, body="status v2")
        gh.rest.issues.add_labels(OWNER, REPO, number, labels=["bug"])
        gh.rest.issues.remove_label(OWNER, REPO, number, "bug")
        gh.rest.issues.update(OWNER, REPO, number, state="closed")
        gh.rest.issues.update(OWNER, REPO, number, state="open")
        pr = gh.rest.pulls.create(
            OWNER, REPO, title="Add sub", head="otto/1/t1", base="main", draft=True
        ).parsed_data
        gh.rest.pulls.update(OWNER, REPO, pr.number, body="Closes #1")
        gh.rest.issues.add_labels(OWNER, REPO, pr.number, labels=["otto"])
        run = gh.rest.checks.create(
            OWNER, REPO, name="otto/verify", head_sha=head, status="in_progress"
        ).parsed_data
        gh.rest.checks.update(OWNER, REPO, run.id, conclusion="success")
        mutation = (
            "mutation($id: ID!) { markPullRequestReadyForReview(input: {pullRequestId: $id}) "
            "{ pullRequest { isDraft } } }"
        )
        assert gh.graphql(mutation, {"id": pr.node_id}) == {
            "markPullRequestReadyForReview": {"pullRequest": {"isDraft": False}}
        }
        to_draft = gh.graphql(
            f'mutation {{ convertPullRequestToDraft(input: {{pullRequestId: "{pr.node_id}"}}) '
            "{ pullRequest { id isDraft } } }"
        )
        assert to_draft == {"convertPullRequestToDraft": {"pullRequest": {"id": pr.node_id, "isDraft": True}}}
        gh.graphql(mutation, {"id": pr.node_id})
    sim.push_commit(OWNER, REPO, "otto/1/t1", {"NOTES.md": "n\n"}, "notes", "bob")
    sim.comment(OWNER, REPO, pr.number, "looks good", "alice")
    sim.submit_review(
        OWNER,
        REPO,
        pr.number,
        "alice",
        "CHANGES_REQUESTED",
        "fix it",
        comments=[{"path": "src/sub.py", "line": 2, "body": "use operator.sub"}],
    )
    with world.client(world.installation_token()) as gh:
        gh.rest.pulls.update(OWNER, REPO, pr.number, state="closed")
        gh.rest.pulls.update(OWNER, REPO, pr.number, state="open")
        gh.rest.pulls.merge(OWNER, REPO, pr.number, merge_method="squash")
    sim.wait_for_deliveries_idle(10)


def test_every_emitted_payload_parses_and_is_signed(world: World) -> None:
    exercise_every_event(world)
    deliveries = world.sim.deliveries
    assert {(d.event, d.action) for d in deliveries} >= EXPECTED
    with world.receiver.lock:
        received = {r.headers["x-github-delivery"]: r for r in world.receiver.received}
    failures = []
    for d in deliveries:
        try:
            event = githubkit.webhooks.parse(d.event, d.body)
        except ValueError as exc:
            failures.append(f"{d.event}.{d.action}: {exc}")
            continue
        assert getattr(event, "action", None) == d.action
        assert d.status_code == 200, (d.event, d.action, d.error)
        got = received[d.id]
        assert got.body == d.body
        assert got.headers["x-github-event"] == d.event
        assert (
            got.headers["x-hub-signature-256"]
            == "sha256=" + hmac.new(SECRET.encode(), got.body, hashlib.sha256).hexdigest()
        )
        assert githubkit.webhooks.verify(SECRET, got.body, got.headers["x-hub-signature-256"])
        assert got.headers["x-github-hook-installation-target-type"] == "integration"
        assert got.headers["x-github-hook-installation-target-id"] == str(APP_ID)
        assert got.headers["user-agent"].startswith("GitHub-Hookshot/")
        assert got.headers["content-type"] == "application/json"
        assert got.headers["x-github-hook-id"].isdigit()
        payload = d.payload
        assert payload["installation"]["id"] == world.installation_id
        assert "sender" in payload
        assert "repository" in payload or d.event == "installation"
    assert not failures, "\n".join(failures)

    merged = [d.payload for d in deliveries if (d.event, d.action) == ("pull_request", "closed")]
    assert [p["pull_request"]["merged"] for p in merged] == [False, True]
    review = world.payloads("pull_request_review", "submitted")[0]["review"]
    assert review["state"] == "changes_requested"
    assert review["commit_id"]
    bot_comment = [p for p in world.payloads("issue_comment", "created") if p["sender"]["type"] == "Bot"]
    assert bot_comment[0]["sender"]["login"] == "otto[bot]"


def test_human_actions_are_synchronous_and_redelivery_keeps_the_guid(world: World) -> None:
    sim = world.sim
    number = sim.create_issue(OWNER, REPO, "x", "y", "alice")
    delivery = sim.add_label(OWNER, REPO, number, "otto", "bob")
    assert (delivery.event, delivery.action, delivery.status_code, delivery.response_body) == (
        "issues",
        "labeled",
        200,
        "ok",
    )
    with world.receiver.lock:
        assert world.receiver.received[-1].headers["x-github-delivery"] == delivery.id
    again = sim.redeliver(delivery.id)
    assert again.id == delivery.id
    assert again.body == delivery.body
    assert again.status_code == 200
    with world.receiver.lock:
        guids = [r.headers["x-github-delivery"] for r in world.receiver.received]
    assert guids.count(delivery.id) == 2


def test_app_caused_events_are_queued_not_blocking(world: World) -> None:
    sim = world.sim
    number = sim.create_issue(OWNER, REPO, "x", "y", "alice")
    sim.set_webhook_url(APP_ID, "http://127.0.0.1:9/unreachable")
    with world.client(world.installation_token()) as gh:
        resp = gh.rest.issues.create_comment(OWNER, REPO, number, body="hi")
        assert resp.status_code == 201
    sim.wait_for_deliveries_idle(10)
    last = sim.deliveries_of("issue_comment", "created")[-1]
    assert last.status_code is None
    assert last.error is not None
    assert last.payload["sender"]["login"] == "otto[bot]"


def test_webhook_posts_to_a_real_endpoint_contain_raw_json(world: World) -> None:
    sim = world.sim
    number = sim.create_issue(OWNER, REPO, "x", "y", "alice")
    d = sim.comment(OWNER, REPO, number, "hello", "carol")
    assert d.payload["comment"]["body"] == "hello"
    assert d.payload["issue"]["number"] == number
    assert world.http.get(world.receiver.url.replace("/webhooks", "/nothing")).status_code == 404
