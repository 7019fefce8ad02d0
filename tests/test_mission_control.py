"""Mission Control over real HTTP: sign-in through the simulator's OAuth flow, who sees what, the pages,
links from GitHub, actions (authorised like `/otto` commands, CSRF-protected), bad input."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import urlsplit

import httpx

from app.domain.run import RunPhase, TaskStatus
from app.runtime import web_app
from app.webserver import serve_in_thread as serve_web_in_thread
from tests.mission_control import MC, sign_in, until


def text_of(html: str) -> str:
    """The page's text, roughly as a person reads it (tags dropped, entities decoded)."""
    return unescape(re.sub(r"<[^>]+>", " ", html))


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no CSRF token on the page"
    return m.group(1)


async def test_unauthenticated_requests_get_the_sign_in_page(mc: MC) -> None:
    async with httpx.AsyncClient(base_url=mc.url) as http:
        for path in ("/runs", mc.run_path(mc.a, mc.demo_issue), "/runs/1/1/tasks/t1/attempts/1"):
            page = await http.get(path)
            assert page.status_code == 401, path
            assert "Sign in with GitHub" in page.text
            assert "shout" not in page.text.lower()  # nothing of the run leaks
        live = await http.get(mc.run_path(mc.a, mc.demo_issue) + "/live")
        assert live.status_code == 401
        # a forged cookie is no session
        http.cookies.set("otto_session", "eyJsb2dpbiI6ImFsaWNlIn0.forged.sig")
        assert (await http.get("/runs")).status_code == 401


async def test_a_writer_of_a_sees_a_runs_and_not_b(mc: MC) -> None:
    async with mc.signed_in("alice") as http:
        runs = await http.get("/runs")
        assert runs.status_code == 200, runs.text
        assert "acme/greeter" in runs.text
        assert "bravo/widgets" not in runs.text
        assert "Add a shout mode" in runs.text
        assert runs.headers["server-timing"].startswith("app;dur=")
        assert "script-src 'self'" in runs.headers["content-security-policy"]
        # B's run: the same 404 as a run that doesn't exist, for its page, live fragment and artifacts
        b_run = mc.run_path(mc.b, mc.b_issue)
        for path in (b_run, b_run + "/tasks/t1/attempts/1", b_run + "/artifacts/plan.json"):
            assert (await http.get(path)).status_code == 404, path
        assert (await http.get(b_run + "/live")).status_code == 404
        # filtering by B's name shows nothing either
        assert "bravo" not in (await http.get("/runs", params={"repo": "bravo/widgets"})).text
    async with mc.signed_in("bob") as http:
        runs = await http.get("/runs")
        assert "bravo/widgets" in runs.text
        assert "acme/greeter" not in runs.text


async def test_the_demo_runs_pages_show_plan_tasks_transcripts_logs_and_diff(mc: MC) -> None:
    state = await mc.state(mc.a, mc.demo_issue)
    assert state.phase == RunPhase.WAITING_REVIEW
    async with mc.signed_in("alice") as http:
        run = await http.get(mc.run_path(mc.a, mc.demo_issue))
        assert run.status_code == 200
        page = text_of(run.text)
        assert "Library first, then the command line that uses it." in page  # plan summary
        assert "Add shout() to greeter.core" in page
        assert "Add --shout to the greet command" in page
        assert "depends on t1" in page
        assert "A `shout(name)` function and a `--shout` flag." in page  # the issue, quoted
        for rec in state.tasks:
            assert f"PR #{rec.pr_number}" in page
        assert "Batch 1" in page
        assert "Batch 2" in page
        assert "waiting review" in page
        assert 'id="stop"' in run.text  # a writer of an active run can stop it
        attempt = await http.get(mc.run_path(mc.a, mc.demo_issue) + "/tasks/t1/attempts/1")
        assert attempt.status_code == 200
        page = text_of(attempt.text)
        assert "str_replace_based_edit_tool" in page
        assert "create tests/test_shout.py" in page
        assert "$ python -m pytest -q" in page  # the tool call, and its result
        assert "passed" in page  # pytest's output in a tool result and the verify log
        assert "first check" in page  # the verify round's log
        assert "+def shout(name: str) -> str:" in page  # the diff
        assert "</span>\n<span" not in attempt.text.split('<pre class="diff">')[1]  # no blank lines
        assert "Step 5" in page
        assert "Added `shout(name)`" in page
        # raw artifacts are plain text, never HTML
        raw = await http.get(mc.run_path(mc.a, mc.demo_issue) + "/artifacts/t1/attempt-1/diff.patch")
        assert raw.status_code == 200
        assert raw.headers["content-type"].startswith("text/plain")
        assert raw.headers["x-content-type-options"] == "nosniff"


async def test_github_links_to_the_pages(mc: MC) -> None:
    sim, a = mc.sim, mc.a
    state = await mc.state(a, mc.demo_issue)
    run_url = f"{mc.url}{mc.run_path(a, mc.demo_issue)}"
    comment = next(c for c in sim.comments(a.owner, a.name, mc.demo_issue) if c.user.login == "otto[bot]")
    assert f"[Mission Control]({run_url})" in comment.body
    for rec in state.tasks:
        assert rec.pr_number is not None
        assert rec.head_sha is not None
        attempt_url = f"{run_url}/tasks/{rec.task.id}/attempts/{rec.attempts}"
        assert attempt_url in sim.pull(a.owner, a.name, rec.pr_number).body
        checks = [c for c in sim.check_runs(a.owner, a.name, rec.head_sha) if c.name == "otto/verify"]
        assert [c.details_url for c in checks] == [attempt_url]
    async with mc.signed_in("alice") as http:
        page = await http.get(urlsplit(checks[0].details_url).path)
        assert page.status_code == 200
        assert "Transcript" in page.text


async def test_a_reader_sees_the_pages_but_cannot_stop_or_retry(mc: MC) -> None:
    number = mc.demo_issue
    path = mc.run_path(mc.a, number)
    async with mc.signed_in(mc.reader) as http:
        run = await http.get(path)
        assert run.status_code == 200
        assert "Add shout() to greeter.core" in run.text
        assert 'id="stop"' not in run.text
        assert "Retry t1" not in run.text
        assert "read only" in run.text
        csrf = csrf_of(run.text)  # the sign-out form's: a valid token, still no permission
        stop = await http.post(path + "/stop", data={"csrf": csrf})
        assert stop.status_code == 403
        assert "write access" in stop.text
        retry = await http.post(path + "/tasks/t1/retry", data={"csrf": csrf, "guidance": "x"})
        assert retry.status_code == 403
    state = await mc.state(mc.a, number)
    assert state.stop_requested_by is None
    assert state.phase == RunPhase.WAITING_REVIEW
    assert all(r.attempts == 1 for r in state.tasks)


async def test_actions_need_the_sessions_csrf_token_and_this_sites_origin(mc: MC) -> None:
    path = mc.run_path(mc.a, mc.demo_issue)
    async with mc.signed_in("alice") as http:
        csrf = csrf_of((await http.get(path)).text)
        assert (await http.post(path + "/stop")).status_code == 403
        assert (await http.post(path + "/stop", data={"csrf": "not-the-token"})).status_code == 403
        evil = await http.post(
            path + "/stop", data={"csrf": csrf}, headers={"Origin": "https://evil.example"}
        )
        assert evil.status_code == 403
        huge = await http.post(path + "/tasks/t1/retry", data={"csrf": csrf, "guidance": "x" * 40_000})
        assert huge.status_code == 413
        long = await http.post(path + "/tasks/t1/retry", data={"csrf": csrf, "guidance": "x" * 2_001})
        assert long.status_code == 400
        unknown = await http.post(path + "/tasks/nope/retry", data={"csrf": csrf})
        assert unknown.status_code == 404
    # another person's token doesn't work in alice's session either
    async with mc.signed_in(mc.reader) as http:
        other = csrf_of((await http.get(path)).text)
    async with mc.signed_in("alice") as http:
        assert (await http.post(path + "/stop", data={"csrf": other})).status_code == 403
    state = await mc.state(mc.a, mc.demo_issue)
    assert state.stop_requested_by is None


async def test_bad_input_gets_clear_pages_never_a_500(mc: MC) -> None:
    run = mc.run_path(mc.a, mc.demo_issue)
    async with mc.signed_in("alice") as http:
        for path in (
            "/runs/999999/1",
            "/runs/1/2/tasks/t1/attempts/1",
            run + "/tasks/t9/attempts/1",
            run + "/tasks/t1/attempts/0",
            run + "/tasks/t1/attempts/7",
            run + "/artifacts/nothing.txt",
            run + "/artifacts/../../_runs/x.json",
            run + "/artifacts/t1/%2e%2e/%2e%2e/x",
            run + "/tasks/t1/attempts/1/transcript/999.0.result",
            run + "/tasks/t1/attempts/1/transcript/garbage",
        ):
            page = await http.get(path)
            assert page.status_code == 404, (path, page.status_code)
        assert (await http.get("/runs", params={"state": "bogus"})).status_code == 400
        assert (await http.get("/runs", params={"page": "x"})).status_code == 400
        assert (await http.get("/runs", params={"page": "99999"})).status_code == 200
        assert (await http.get("/runs/static/nope.js")).status_code == 404


async def test_sign_in_refuses_a_forged_state_or_code_and_never_redirects_off_site(mc: MC) -> None:
    async with httpx.AsyncClient(base_url=mc.url, timeout=30) as http:
        start = await http.get("/login", params={"next": "https://evil.example/x"})
        query = dict(p.split("=", 1) for p in urlsplit(start.headers["location"]).query.split("&"))
        bad_state = await http.get("/login/callback", params={"code": "abc", "state": "forged"})
        assert bad_state.status_code == 400
        assert "sign in again" in bad_state.text
        bad_code = await http.get("/login/callback", params={"code": "forged", "state": query["state"]})
        assert bad_code.status_code == 400
        assert "GitHub refused the sign-in" in bad_code.text
        assert "otto_session" not in http.cookies
        done = await sign_in(http, "alice")
        assert done.headers["location"] == "/runs"  # not the off-site target
        assert "HttpOnly" in done.headers["set-cookie"]
        assert "SameSite=lax" in done.headers["set-cookie"]
        assert (await http.get("/runs")).status_code == 200


async def test_stop_from_mission_control_is_a_signal_to_the_run(mc: MC) -> None:
    number = await mc.run_issue(mc.b, "Another shout", "Once more.")
    path = mc.run_path(mc.b, number)
    async with mc.signed_in("bob") as http:
        page = await http.get(path)
        stopped = await http.post(path + "/stop", data={"csrf": csrf_of(page.text)})
        assert stopped.status_code == 303
        assert stopped.headers["location"] == f"{path}?sent=stop"

    async def cancelled() -> bool:
        state = await mc.state(mc.b, number)
        return state.phase == RunPhase.CANCELLED and state.stop_requested_by == "bob"

    await until(cancelled)
    async with mc.signed_in("bob") as http:

        async def shown() -> bool:  # the last status publish writes the snapshot just after the state
            return "phase-cancelled" in (await http.get(path)).text

        await until(shown)
        page = await http.get(path)
        assert "@bob asked to stop" in page.text
        assert 'id="stop"' not in page.text  # the run is over
        again = await http.post(path + "/stop", data={"csrf": csrf_of(page.text)})
        assert again.status_code == 409


async def test_a_huge_transcript_renders_bounded_with_expand_on_demand(mc: MC) -> None:
    from bench import ui_data

    a = mc.a
    ui_data.run(mc.store, mc.repo_ref(a), 9000, steps=300)
    base = mc.run_path(a, 9000) + "/tasks/t1/attempts/1"
    async with mc.signed_in("alice") as http:
        page = await http.get(base)
        assert page.status_code == 200
        text = text_of(page.text)
        assert "Step 1" in text
        assert "Step 12" in text
        assert "Step 300" in text
        assert "Step 150" not in text
        assert "Show the 276 steps in between (13–288)" in text
        everything = await http.get(base, params={"all": "1"})
        assert "Step 150" in text_of(everything.text)
        assert "steps in between" not in everything.text
        # 15 results of 60 kB each are clipped to their first 1,500 characters, the rest on demand
        assert len(everything.content) < 1_500_000
        expand = re.search(r'href="([^"]+/transcript/[^"]+)">show (\d+) more characters', everything.text)
        assert expand, "no clipped result"
        full = await http.get(unescape(expand.group(1)))
        assert full.status_code == 200
        assert full.headers["content-type"].startswith("text/plain")
        assert len(full.text) == 1_500 + int(expand.group(2))


async def test_retry_from_mission_control_runs_the_task_again_with_guidance(mc: MC) -> None:
    from tests.e2e import demo_scenario

    scenario = demo_scenario()
    scenario["agent"]["t1.2"] = [{"text": "Looked again as asked: nothing more to change."}]
    number = await mc.run_issue(mc.b, "Shout again", "Once more, louder.", scenario)
    path = mc.run_path(mc.b, number)
    async with mc.signed_in("bob") as http:
        page = await http.get(path)
        assert "Retry t1" in page.text
        sent = await http.post(
            path + "/tasks/t1/retry", data={"csrf": csrf_of(page.text), "guidance": "<b>check</b> the docs"}
        )
        assert sent.status_code == 303
        assert sent.headers["location"] == f"{path}?sent=retry"

        async def retried() -> bool:
            state = await mc.state(mc.b, number)
            rec = state.record("t1")
            return rec.attempts == 2 and rec.status != TaskStatus.RUNNING and state.events_handled >= 1

        await until(retried)
        requests = mc.world.model.requests_for("agent", "t1.2")
        assert requests
        assert "<b>check</b> the docs" in str(requests[0].body)

        async def second_attempt_shown() -> bool:
            return (await http.get(path + "/tasks/t1/attempts/2")).status_code == 200

        await until(second_attempt_shown)
        attempt = await http.get(path + "/tasks/t1/attempts/2")
        assert "Looked again as asked" in attempt.text
        assert "asked to retry t1" in text_of((await http.get(path)).text)  # on the timeline


async def test_the_run_page_shows_pilot_decisions_timeline_budget_and_the_temporal_link(mc: MC) -> None:
    from datetime import timedelta

    from app.artifacts import run_key, snapshot_key
    from app.domain.outages import Waiting
    from app.domain.pilot import PilotDecision, TaskDecision
    from app.domain.snapshot import advance
    from bench import ui_data

    store = mc.store
    snap = ui_data.run(store, mc.repo_ref(mc.a), 9002, phase=RunPhase.RUNNING)
    state = snap.state.model_copy(deep=True)
    state.temporal_ui_url = "https://temporal.example.com/namespaces/default/workflows/otto/1/9002"
    analysis = "The <b>import</b> was circular."
    state.decisions = [
        PilotDecision(
            tasks=[TaskDecision(task_id="t1", analysis=analysis, action="retry", strategy="Import lazily.")],
            summary="t1: retry",
        )
    ]
    state.notices.append("🔁 @alice asked to retry t1.")
    state.tasks[0].status = TaskStatus.RUNNING
    state.tasks[0].attempts = 2
    since = snap.updated_at.replace(hour=10, minute=2)
    state.waiting = Waiting(service="GitHub", detail="502", since=since, step="updating this comment")
    later = advance(snap, state, now=snap.updated_at + timedelta(seconds=30), execution="bench")
    store.put_text(snapshot_key(state.run_id), later.model_dump_json())
    store.put_text(f"{run_key(state.run_id)}/pilot-00017.json", '{"input": "..."}')
    async with mc.signed_in("alice") as http:

        async def shows_attempt_two() -> bool:
            return "attempts/2" in (await http.get(mc.run_path(mc.a, 9002))).text

        await until(shows_attempt_two)
        page = await http.get(mc.run_path(mc.a, 9002))
        text = text_of(page.text)
        assert analysis in text
        assert "Strategy: Import lazily." in text
        assert "pilot-00017.json" in text
        assert f'href="{state.temporal_ui_url}"' in page.text
        assert "$0.7350 used of $5.0000 · $4.2650 left" in text  # the budget, used and left
        for line in ("planning", "t1 passed", "t1 attempt 2 started", "🔁 @alice asked to retry t1."):
            assert line in text, line
        assert "&lt;b&gt;import&lt;/b&gt;" in page.text  # the model's analysis is text, not HTML
        assert "⏸️ waiting for GitHub: 502 since 10:02 UTC, retrying (updating this comment)" in text


async def test_a_cookie_kept_after_sign_out_opens_nothing_on_any_web_process(mc: MC) -> None:
    """The attack: copy the session cookie, let its person sign out, replay the copy, on this web process and
    on a second one (another replica with the same settings), which learns of the sign-out from the store."""
    second = serve_web_in_thread(web_app(mc.settings, mc.client), name="otto-web-2")
    try:
        async with mc.signed_in("alice") as http:
            kept = http.cookies.get("otto_session")
            assert kept
            page = await http.get("/runs")
            assert page.status_code == 200
            for base in (mc.url, second.url):  # before the sign-out the copy works everywhere
                async with httpx.AsyncClient(base_url=base, cookies={"otto_session": kept}) as copy:
                    assert (await copy.get("/runs")).status_code == 200, base
            out = await http.post("/logout", data={"csrf": csrf_of(page.text)})
            assert out.status_code == 303
            assert (await http.get("/runs")).status_code == 401
        for base in (mc.url, second.url):
            async with httpx.AsyncClient(base_url=base, cookies={"otto_session": kept}) as copy:
                replayed = await copy.get(mc.run_path(mc.a, mc.demo_issue))
                assert replayed.status_code == 401, base
                assert "Sign in with GitHub" in replayed.text
                assert (await copy.get(mc.run_path(mc.a, mc.demo_issue) + "/live")).status_code == 401
        # a sign-out ends that session only: signing in again works
        async with mc.signed_in("alice") as again:
            assert (await again.get("/runs")).status_code == 200
    finally:
        second.stop()


async def test_every_link_to_github_in_the_demo_opens_on_the_simulator(mc: MC) -> None:
    """The status comment's, the PR bodies' and Mission Control's links to issues and pull requests answer
    200 with the page a person expects (the simulator serves them), never a 404."""
    import re

    import httpx

    sim, a = mc.sim, mc.a
    base = mc.world.sim_server.url
    state = await mc.state(a, mc.demo_issue)
    texts = [c.body for c in sim.comments(a.owner, a.name, mc.demo_issue)]
    texts += [sim.pull(a.owner, a.name, r.pr_number).body or "" for r in state.tasks if r.pr_number]
    async with mc.signed_in("alice") as http:
        texts.append((await http.get(mc.run_path(a, mc.demo_issue))).text)
        texts.append((await http.get(mc.run_path(a, mc.demo_issue) + "/tasks/t1/attempts/1")).text)
    links = {
        link.rstrip(".,")
        for text in texts
        for link in re.findall(r"https?://[^\s\"'<>()\]]+", text)
        if link.startswith(base) and ("/issues/" in link or "/pull/" in link)
    }
    assert any("/pull/" in link for link in links), links
    assert any("/issues/" in link for link in links), links
    async with httpx.AsyncClient(follow_redirects=True, timeout=10) as web:
        for link in sorted(links):
            page = await web.get(link)
            assert page.status_code == 200, link
            assert "<h1>" in page.text
        pr = state.tasks[0].pr_number
        shown = (await web.get(f"{base}/{a.owner}/{a.name}/pull/{pr}")).text
    assert "otto/verify: success" in shown  # its checks, commits and body are there to read
    assert "Commits" in shown
