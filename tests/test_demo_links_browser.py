"""Every link on the demo's run page and on its attempt pages in Mission Control answers 200 in the local
world (Mission Control's own pages and raw artifacts, the simulator's issue and pull request pages), and the
links to GitHub, followed in the browser, open the issue and the tasks' pull requests."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urldefrag, urlsplit

from playwright.async_api import Browser, Page, expect

from app.domain.links import attempt_path
from app.domain.run import RunState
from tests.mission_control import MC, signed_in_page

SKIPPED_SCHEMES = ("javascript", "mailto", "tel", "data")
# every kind of link these pages may hold; a new one fails the test until it is named here
KNOWN_KINDS = {
    "github issue",
    "github pull request",
    "runs list",
    "run page",
    "attempt page",
    "attempt page (all steps)",
    "transcript piece",
    "artifact",
    "diff.patch",
}
# what the demo's pages must have offered, so the test can't pass on a page without links
REQUIRED_KINDS = {"github issue", "github pull request", "runs list", "run page", "attempt page", "artifact"}


@dataclass(frozen=True)
class Link:
    url: str  # resolved against the page, without its fragment
    text: str
    found_on: str  # the page's path


@dataclass(frozen=True)
class Demo:
    mc: MC
    state: RunState
    sim_url: str

    @property
    def run_url(self) -> str:
        return self.mc.url + self.mc.run_path(self.mc.a, self.mc.demo_issue)

    @property
    def issue_url(self) -> str:
        return f"{self.sim_url}/{self.mc.a.owner}/{self.mc.a.name}/issues/{self.mc.demo_issue}"

    def pr_url(self, number: int) -> str:
        return f"{self.sim_url}/{self.mc.a.owner}/{self.mc.a.name}/pull/{number}"

    def attempt_url(self, task_id: str, n: int) -> str:
        return self.mc.url + (attempt_path(self.state.run_id, task_id, n) or "")

    def attempt_urls(self) -> set[str]:
        return {self.attempt_url(r.task.id, n) for r in self.state.tasks for n in range(1, r.attempts + 1)}

    def kind(self, url: str) -> str:
        """What a link is, for the report and the coverage assertions."""
        path, repo = urlsplit(url).path, f"/{self.mc.a.owner}/{self.mc.a.name}"
        run = urlsplit(self.run_url).path
        if url.startswith(self.sim_url + "/"):
            if path.startswith(f"{repo}/issues/"):
                return "github issue"
            return "github pull request" if path.startswith(f"{repo}/pull/") else "github other"
        if not url.startswith(self.mc.url + "/"):
            return "elsewhere"
        if path in ("/runs", run):
            return "runs list" if path == "/runs" else "run page"
        if path.startswith(f"{run}/artifacts/"):
            return "diff.patch" if path.endswith("/diff.patch") else "artifact"
        if path.startswith(f"{run}/tasks/") and "/transcript/" in path:
            return "transcript piece"
        if path.startswith(f"{run}/tasks/"):
            return "attempt page (all steps)" if urlsplit(url).query == "all=1" else "attempt page"
        return "mission control other"


async def links_on(page: Page) -> list[Link]:
    """The page's ``a[href]``, resolved by the browser; same-page anchors and non-web schemes left out."""
    found: list[list[str]] = await page.locator("a[href]").evaluate_all(
        "els => els.map(a => [a.getAttribute('href'), a.href, a.textContent.trim()])"
    )
    where = urlsplit(page.url).path
    return [
        Link(urldefrag(resolved).url, text, where)
        for raw, resolved, text in found
        if not raw.startswith("#") and urlsplit(resolved).scheme not in SKIPPED_SCHEMES
    ]


async def crawl(page: Page, demo: Demo) -> list[Link]:
    """The links of the run page (open in ``page``) and of every attempt page reachable from it."""
    links = await links_on(page)
    visited = {page.url}
    queue = sorted({link.url for link in links if demo.kind(link.url) == "attempt page"})
    while queue:
        url = queue.pop(0)
        if url in visited:
            continue
        visited.add(url)
        response = await page.goto(url)
        assert response is not None
        assert response.status == 200, url
        await expect(page.locator("#attempt-state")).to_be_visible()
        more = await links_on(page)
        links += more
        queue += sorted({m.url for m in more if demo.kind(m.url) == "attempt page"} - visited)
    assert demo.attempt_urls() <= visited, demo.attempt_urls() - visited
    return links


async def fetch_all(page: Page, links: list[Link]) -> dict[str, int]:
    """Each distinct link's status, fetched with the browser context's cookies (Mission Control's session)."""
    return {url: (await page.context.request.get(url)).status for url in sorted({x.url for x in links})}


async def test_every_link_on_the_demos_run_and_attempt_pages_answers_200(browser: Browser, mc: MC) -> None:
    a, sim = mc.a, mc.sim
    state = await mc.state(a, mc.demo_issue)
    demo = Demo(mc, state, str(sim.base_url).rstrip("/"))
    page = await signed_in_page(browser, mc, "alice", mc.run_path(a, mc.demo_issue))
    await expect(page.locator(".task")).to_have_count(len(state.tasks))

    links = await crawl(page, demo)
    checked = await fetch_all(page, links)
    broken = {
        url: (status, sorted({(x.text, x.found_on) for x in links if x.url == url}))
        for url, status in checked.items()
        if status != 200
    }
    assert not broken, broken

    # not vacuous: the issue, every task's PR, every attempt page and its raw log and diff were among them
    kinds = {url: demo.kind(url) for url in checked}
    print(f"checked {len(checked)} links:")
    for url in sorted(checked, key=lambda u: (kinds[u], u)):
        print(f"  {kinds[url]:<26} {checked[url]} {url}")
    assert REQUIRED_KINDS <= set(kinds.values()) <= KNOWN_KINDS, kinds
    assert {demo.issue_url, demo.run_url, *demo.attempt_urls()} <= checked.keys(), sorted(checked)
    for rec in state.tasks:
        assert rec.pr_number is not None, rec.task.id
        assert rec.pr_url == demo.pr_url(rec.pr_number)
        assert rec.pr_url in checked, (rec.task.id, sorted(checked))
        for n in range(1, rec.attempts + 1):
            prefix = f"{demo.run_url}/artifacts/{rec.task.id}/attempt-{n}/"
            assert f"{prefix}diff.patch" in checked, (rec.task.id, n)
            assert any(u.startswith(prefix) and kinds[u] == "artifact" for u in checked), (rec.task.id, n)

    # the links to GitHub, clicked: the simulator's issue page and each task's pull request page open
    issue = sim.issue(a.owner, a.name, mc.demo_issue)
    await page.goto(demo.run_url)
    await page.get_by_role("link", name="on GitHub", exact=True).click()
    await page.wait_for_url(demo.issue_url)
    await expect(page.locator("h1")).to_have_text(
        f"{issue.title} · Issue #{mc.demo_issue} · {a.owner}/{a.name}"
    )
    for rec in state.tasks:
        assert rec.pr_number is not None
        title = f"{sim.pull(a.owner, a.name, rec.pr_number).title} · Pull Request #{rec.pr_number}"
        for where, link in (
            (demo.run_url, page.locator(f"#task-{rec.task.id} a.pr")),
            (
                demo.attempt_url(rec.task.id, rec.attempts),
                page.get_by_role("link", name=f"PR #{rec.pr_number}", exact=True),
            ),
        ):
            await page.goto(where)
            await link.click()
            await page.wait_for_url(demo.pr_url(rec.pr_number))
            await expect(page.locator("h1")).to_have_text(f"{title} · {a.owner}/{a.name}")
            await expect(page.locator("p.state")).to_contain_text(rec.branch)
    await page.context.close()
