"""Mission Control in a real browser (Playwright, Debian's chromium): signing in through the simulator's
authorize page, the demo's pages, a running run's page following it live, links from GitHub, XSS payloads
from an issue, a tool's output and a file name, and what a reader is not offered."""

from __future__ import annotations

import asyncio
from typing import Any

from playwright.async_api import Browser, Page, expect

from app.domain.run import RunPhase
from bench import ui_data
from tests.e2e import demo_scenario, settled, wait_for_state
from tests.mission_control import MC, signed_in_page

XSS_ISSUE = '<script>window.__xss="issue"</script><img src=x onerror="window.__xss=\'issue-img\'">'
XSS_FILE = "<img src=x onerror=window.__xss='file'>.txt"
XSS_OUTPUT = "<script>window.__xss='tool'</script>"


async def test_a_writer_of_a_signs_in_and_sees_a_runs_not_bs(browser: Browser, mc: MC) -> None:
    page = await signed_in_page(browser, mc, "alice")
    rows = page.locator("tr.run-row")
    await expect(rows.first).to_be_visible()
    names = await page.locator("tr.run-row .repo").all_inner_texts()
    assert names
    assert set(names) == {"acme/greeter"}
    await page.context.close()


async def test_the_demo_runs_pages_show_the_plan_two_tasks_transcripts_and_logs(
    browser: Browser, mc: MC
) -> None:
    page = await signed_in_page(browser, mc, "alice", mc.run_path(mc.a, mc.demo_issue))
    await expect(page.locator(".task")).to_have_count(2)
    await expect(page.locator("#task-t1 header")).to_contain_text("Add shout() to greeter.core")
    await expect(page.locator("#task-t2")).to_contain_text("depends on t1")
    await expect(page.locator("#phase")).to_have_text("waiting review")
    await page.locator("#task-t1 a.attempt-link").first.click()
    await expect(page.locator("h1")).to_have_text("t1: Add shout() to greeter.core")
    await expect(page.locator("li.step")).to_have_count(5)
    await expect(page.locator("li.step").nth(1)).to_contain_text("str_replace greeter/core.py")
    await expect(page.locator("details.log").last).to_contain_text("passed")
    await expect(page.locator("details.file summary").first).to_contain_text("greeter/core.py")
    await expect(page.locator("pre.diff .add").first).to_be_visible()
    await page.context.close()


async def test_a_running_runs_page_updates_live_to_waiting_for_review(browser: Browser, mc: MC) -> None:
    mc.world.model.load(demo_scenario())
    mc.gate.close("t2", 0)  # t2's first model call waits: the run is visibly running
    try:
        number = mc.start_issue(mc.a, "Shout, live", "A `shout(name)` function and a `--shout` flag.")
        assert await asyncio.to_thread(mc.gate.reached.wait, 120), "t2 never started"
        page = await signed_in_page(browser, mc, "alice", mc.run_path(mc.a, number))
        await expect(page.locator("#task-t2 .task-state")).to_have_text("running")
        await expect(page.locator("#phase")).to_have_text("running")
        await page.evaluate("() => { window.__samePage = true }")
    finally:
        mc.gate.open()
    await expect(page.locator("#phase")).to_have_text("waiting review", timeout=90_000)
    await expect(page.locator("#task-t2 .task-state")).to_have_text("passed")
    assert await page.evaluate("() => window.__samePage") is True  # updated in place, not reloaded
    assert await page.locator("#live").get_attribute("data-final") == "0"  # still waiting on reviews
    await page.context.close()


async def test_the_check_runs_details_url_opens_the_attempt_page(browser: Browser, mc: MC) -> None:
    state = await wait_for_state(mc.client, mc.repo_id(mc.a), mc.demo_issue, settled)
    rec = state.record("t2")
    assert rec.head_sha
    (check,) = [c for c in mc.sim.check_runs(mc.a.owner, mc.a.name, rec.head_sha) if c.name == "otto/verify"]
    assert check.details_url.startswith(mc.url)
    page = await signed_in_page(browser, mc, "alice", check.details_url[len(mc.url) :])
    await expect(page.locator("h1")).to_have_text("t2: Add --shout to the greet command")
    await expect(page.locator(".crumbs")).to_contain_text("attempt 1")
    await expect(page.locator("#attempt-state")).to_have_text("passed")
    await page.context.close()


def xss_scenario() -> dict[str, Any]:
    return {
        "classify": [{"json": {"actionable": True, "summary": "<b>bold</b> summary", "questions": []}}],
        "plan": [
            {
                "json": {
                    "summary": "<script>window.__xss='plan'</script>",
                    "tasks": [
                        {
                            "id": "t1",
                            "title": "Add <img src=x onerror=window.__xss='title'>",
                            "intent": "<script>window.__xss='intent'</script>",
                            "depends_on": [],
                        }
                    ],
                }
            }
        ],
        "agent": {
            "t1": [
                {
                    "tool_use": {
                        "name": "str_replace_based_edit_tool",
                        "input": {"command": "create", "path": XSS_FILE, "file_text": XSS_OUTPUT + "\n"},
                    }
                },
                {"tool_use": {"name": "run_command", "input": {"command": f'printf "%s\\n" "{XSS_OUTPUT}"'}}},
                {"text": "Done </pre><script>window.__xss='summary'</script>"},
            ]
        },
    }


async def no_xss(page: Page) -> None:
    assert await page.evaluate("() => window.__xss") is None
    assert await page.locator("img").count() == 0
    assert await page.locator("main script").count() == 0


async def test_xss_payloads_render_as_text(browser: Browser, mc: MC) -> None:
    title = "Shout <script>window.__xss='list'</script>"
    number = await mc.run_issue(mc.a, title, XSS_ISSUE, xss_scenario())
    state = await mc.state(mc.a, number)
    assert state.phase == RunPhase.WAITING_REVIEW, (state.reason, [t.note for t in state.tasks])
    page = await signed_in_page(browser, mc, "alice", mc.run_path(mc.a, number))
    await expect(page.locator("#issue-body")).to_have_text(XSS_ISSUE)
    await expect(page.locator("#task-t1 header")).to_contain_text(
        "Add <img src=x onerror=window.__xss='title'>"
    )
    await no_xss(page)
    await page.goto(mc.url + mc.run_path(mc.a, number) + "/tasks/t1/attempts/1")
    await expect(page.locator("li.step").first).to_contain_text(f"create {XSS_FILE}")
    await expect(page.locator(".result").nth(1)).to_contain_text(XSS_OUTPUT)
    await expect(page.locator("details.file summary").first).to_contain_text(XSS_FILE)
    await expect(page.locator("pre.summary")).to_contain_text("</pre><script>")
    await no_xss(page)
    await page.goto(mc.url + "/runs")
    await expect(page.locator("tr.run-row").first).to_contain_text(title)
    await no_xss(page)
    await page.context.close()


async def test_a_reader_sees_the_pages_but_no_stop_or_retry(browser: Browser, mc: MC) -> None:
    path = mc.run_path(mc.a, mc.demo_issue)
    reader = await signed_in_page(browser, mc, mc.reader, path)
    await expect(reader.locator(".task")).to_have_count(2)
    await expect(reader.locator("#stop")).to_have_count(0)
    await expect(reader.locator("form.retry")).to_have_count(0)
    await reader.context.close()
    writer = await signed_in_page(browser, mc, "alice", path)
    await expect(writer.locator("#stop")).to_have_count(1)
    await expect(writer.locator("form.retry")).to_have_count(2)
    await writer.context.close()


async def test_a_clipped_result_expands_on_demand_as_text(browser: Browser, mc: MC) -> None:
    a = mc.a
    ui_data.run(mc.store, mc.repo_ref(a), 9001, steps=30)
    page = await signed_in_page(browser, mc, "alice", mc.run_path(a, 9001) + "/tasks/t1/attempts/1")
    link = page.locator("a.expand").first
    target = await link.get_attribute("data-expand")
    before = await page.locator(f"#{target}").inner_text()
    await link.click()
    await expect(page.locator(f"#{target}")).not_to_have_text(before)
    after = await page.locator(f"#{target}").inner_text()
    assert len(after) > len(before) + 10_000
    assert after.startswith(before)
    await page.context.close()
