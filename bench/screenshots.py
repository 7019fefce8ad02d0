"""``python -m bench screenshots``: the README's pictures of Mission Control, from real runs.

Starts the tests' Mission Control world (Temporal, GitHub simulator, scripted model, S3 on moto, Otto), runs
the demo's issue and a few more, signs in as a maintainer of both repositories in Debian's chromium and saves
``docs/mission-control-runs.png``, ``docs/mission-control-run.png`` and ``docs/mission-control-attempt.png``.
"""

from __future__ import annotations

from pathlib import Path

from bench.common import REPO_ROOT, bench_dir, run_main, say

DOCS = REPO_ROOT / "docs"


async def take(out: Path) -> int:
    from playwright.async_api import async_playwright

    from tests.e2e import demo_scenario
    from tests.mission_control import CHROMIUM, CHROMIUM_ARGS, mission_control_world

    root = bench_dir("screenshots")
    say("Starting the world and running the demo's issue (about a minute)…")
    async with mission_control_world(root) as mc:
        sim = mc.sim
        sim.create_user("mona", name="Mona Lisa")
        for r in (mc.a, mc.b):
            sim.set_permission(r.owner, r.name, "mona", "maintain")
        await mc.run_issue(mc.b, "Greet in French", "`greet(name, lang='fr')` says Bonjour.", demo_scenario())
        vague = {"actionable": False, "summary": "Unclear what 'better' means", "questions": ["Better how?"]}
        unclear = {"classify": [{"json": vague}]}
        await mc.run_issue(mc.a, "Make it better", "It should be better.", unclear)
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = await browser.new_page(viewport={"width": 1280, "height": 760}, device_scale_factor=1)
            await page.goto(mc.url + "/runs")
            await page.click("#signin")
            await page.click("button[value='mona']")
            await page.wait_for_url(mc.url + "/runs")
            await page.screenshot(path=str(out / "mission-control-runs.png"))
            await page.goto(mc.url + mc.run_path(mc.a, mc.demo_issue))
            await page.screenshot(path=str(out / "mission-control-run.png"), full_page=True)
            await page.goto(mc.url + mc.run_path(mc.a, mc.demo_issue) + "/tasks/t1/attempts/1")
            await page.set_viewport_size({"width": 1280, "height": 1500})
            await page.screenshot(path=str(out / "mission-control-attempt.png"))
            await browser.close()
    for name in ("runs", "run", "attempt"):
        say(f"  wrote {out / f'mission-control-{name}.png'}")
    return 0


def main(flags: list[str]) -> int:
    DOCS.mkdir(parents=True, exist_ok=True)

    async def go() -> int:
        return await take(DOCS)

    return run_main(go)
