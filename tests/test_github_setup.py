"""`otto setup`: the App-manifest flow end to end against the simulator (a real HTTP client plays the browser:
it reads the forms and posts them as a browser would), and the attacks on it."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import stat
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
from pydantic import SecretStr

from app.github_auth import GitHubApp
from app.github_setup import GitHubHost, ManifestSetup, SetupError, build_manifest, merge_env
from app.settings import Settings
from tests.conftest_sim import OWNER, REPO, World, sim_servers_fixture, world_fixture  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
APP_YML = (ROOT / "app.yml").read_text()
WEBHOOK = "https://otto.example.net/webhooks"


class Forms(HTMLParser):
    """The forms of a page: action, method and their fields (inputs and textareas), as a browser sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({"action": a.get("action", ""), "method": a.get("method", "get"), "fields": {}})
        elif tag == "input" and self.forms and "name" in a:
            self.forms[-1]["fields"][a["name"]] = a.get("value", "")
        elif tag == "textarea" and self.forms and "name" in a:
            self._textarea = a["name"]
            self.forms[-1]["fields"][a["name"]] = ""

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self.forms[-1]["fields"][self._textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self._textarea = None


def only_form(page: httpx.Response) -> dict[str, Any]:
    parser = Forms()
    parser.feed(page.text)
    assert len(parser.forms) == 1, page.text
    form = parser.forms[0]
    form["action"] = urljoin(str(page.url), form["action"])
    return form


def submit(browser: httpx.Client, page: httpx.Response, **overrides: str) -> httpx.Response:
    form = only_form(page)
    assert form["method"].lower() == "post"
    return browser.post(form["action"], data={**form["fields"], **overrides})


def browser_for(world: World, login: str = OWNER) -> httpx.Client:
    session = world.sim.create_web_session(login)
    return httpx.Client(cookies={"user_session": session}, timeout=30, follow_redirects=True)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def read_env(path: Path) -> dict[str, str]:
    from dotenv import dotenv_values

    return {k: v or "" for k, v in dotenv_values(path).items()}


# --------------------------------------------------------------------------------------------- end to end
def test_otto_setup_registers_installs_and_authenticates(world: World, tmp_path: Path) -> None:
    sim = world.sim
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# my settings\nOTTO_MODEL=claude-x\nOTTO_WEBHOOK_SECRET=old\n"
        'OTTO_GITHUB_PRIVATE_KEY="-----BEGIN OLD KEY-----\nabc\n-----END OLD KEY-----"\n'
    )
    otto = Path(sys.executable).parent / "otto"
    args = ["setup", "--github-url", world.url, "--webhook-url", WEBHOOK, "--name", "Otto Test", "--no-open"]
    proc = subprocess.Popen(
        [str(otto), *args, "--manifest", str(ROOT / "app.yml")],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        while not (lines and lines[-1].startswith("http://127.0.0.1:")):
            line = proc.stdout.readline()
            assert line, f"otto setup ended early: {proc.stderr.read() if proc.stderr else ''}"
            lines.append(line.strip())
        with browser_for(world) as browser:
            page = browser.get(lines[-1])
            form = only_form(page)
            assert form["action"].startswith(f"{world.url}/settings/apps/new?state=")
            done = submit(browser, page)  # GitHub registers the App and redirects back to otto setup
            assert done.status_code == 200, done.text
            assert [r.status_code for r in done.history] == [302]
            assert urlsplit(str(done.url)).path == "/callback"
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            install_url = out.strip().splitlines()[-1]
            app = sim.app_by_slug("otto-test")
            assert install_url == f"{world.url}/apps/otto-test/installations/new"
            # the maintainer follows the printed link and installs the App on their account
            installed = submit(browser, browser.get(install_url))
            assert installed.status_code == 200, installed.text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    # the App is what app.yml describes, with the given webhook URL, owned by the signed-in user
    assert (app.name, app.owner.login, app.webhook_url) == ("Otto Test", OWNER, WEBHOOK)
    assert app.permissions == {
        "metadata": "read",
        "contents": "write",
        "pull_requests": "write",
        "issues": "write",
        "checks": "write",
    }
    assert "installation" not in app.events
    assert "issues" in app.events

    env = read_env(env_file)
    key_file = Path(env["OTTO_GITHUB_PRIVATE_KEY_PATH"])
    assert mode(env_file) == 0o600
    assert mode(key_file) == 0o600
    assert env["OTTO_GITHUB_APP_ID"] == str(app.id)
    assert env["OTTO_GITHUB_APP_SLUG"] == "otto-test"
    assert env["OTTO_GITHUB_API_URL"] == f"{world.url}/api/v3"
    assert env["OTTO_MODEL"] == "claude-x"
    assert "# my settings" in env_file.read_text()
    assert "OTTO_GITHUB_PRIVATE_KEY" not in env  # the old inline key would have won over the new file
    assert env["OTTO_WEBHOOK_SECRET"] not in ("", "old")
    assert env["OTTO_GITHUB_CLIENT_ID"] == app.client_id
    assert len(env["OTTO_GITHUB_CLIENT_SECRET"]) >= 20

    # nothing secret was printed
    pem = key_file.read_text()
    secrets = [env["OTTO_WEBHOOK_SECRET"], env["OTTO_GITHUB_CLIENT_SECRET"], *pem.splitlines()[1:-1]]
    assert not [s for s in secrets if s in out or s in err]

    # the written credentials are the App's: Otto's own client mints an installation token with them
    settings = Settings(_env_file=env_file)
    assert settings.webhook_secret == SecretStr(env["OTTO_WEBHOOK_SECRET"])
    installation = sim.installation_for(app.id, OWNER)
    assert installation is not None
    token = asyncio.run(GitHubApp(settings).installation_token(installation.id))
    with world.client(token) as gh:
        assert gh.rest.repos.get(OWNER, REPO).parsed_data.full_name == f"{OWNER}/{REPO}"
    # and GitHub signs the App's webhooks with the secret that was written
    delivery = next(d for d in sim.deliveries_of("installation", "created") if d.app_id == app.id)
    signed = hmac.new(env["OTTO_WEBHOOK_SECRET"].encode(), delivery.body, hashlib.sha256).hexdigest()
    assert delivery.headers["X-Hub-Signature-256"] == f"sha256={signed}"


# --------------------------------------------------------------------------------------------- attacks
@pytest.fixture(name="flow")
def flow_fixture(world: World, tmp_path: Path) -> Any:
    setup = ManifestSetup(
        APP_YML, WEBHOOK, GitHubHost.from_url(world.url), tmp_path / ".env", name="Otto Attack"
    )
    setup.start()
    try:
        yield setup
    finally:
        setup.stop()


def test_wrong_and_replayed_state_change_nothing(world: World, flow: ManifestSetup, tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    with browser_for(world) as browser:
        page = browser.get(flow.url)
        state = parse_qs(urlsplit(only_form(page)["action"]).query)["state"][0]
        forged = browser.get(f"{flow.url}callback", params={"code": "stolen", "state": state[:-1] + "x"})
        assert forged.status_code == 400
        assert not env_file.exists()
        assert not flow.wait(0)
        assert world.sim.count_calls("POST", r"/app-manifests/.*/conversions") == 0

        done = submit(browser, page)
        assert done.status_code == 200
        assert flow.result is not None
        written = env_file.read_text()
        replay = browser.get(str(done.url))  # the same callback, code and state again
        assert replay.status_code == 400
        assert env_file.read_text() == written
        assert world.sim.count_calls("POST", r"/app-manifests/.*/conversions") == 1
        assert browser.get(flow.url).status_code == 410  # no new state is handed out


def test_setup_page_answers_only_to_loopback_names(flow: ManifestSetup) -> None:
    """A DNS-rebinding page cannot drive the local server: it would come with its own Host."""
    resp = httpx.get(flow.url, headers={"Host": "attacker.example"})
    assert resp.status_code == 400
    assert httpx.get(flow.url).status_code == 200


def test_a_refused_code_writes_nothing(world: World, flow: ManifestSetup, tmp_path: Path) -> None:
    with browser_for(world) as browser:
        page = browser.get(flow.url)
        form = only_form(page)
        to_github = browser.post(form["action"], data=form["fields"], follow_redirects=False)
        assert to_github.status_code == 302
        world.sim.expire_manifest_codes()
        back = browser.get(to_github.headers["location"])
    assert back.status_code == 502
    assert flow.wait(0)
    assert flow.result is None
    assert "422" in (flow.error or "")
    assert not (tmp_path / ".env").exists()
    assert not (tmp_path / ".otto").exists()


def test_manifest_codes_are_single_use_and_expire(world: World) -> None:
    sim, api = world.sim, f"{world.url}/api/v3"
    manifest = build_manifest(APP_YML, WEBHOOK, "https://example.net/back", name="Once")
    with browser_for(world) as browser:
        registered = browser.post(
            f"{world.url}/settings/apps/new?state=s1",
            data={"manifest": json.dumps(manifest)},
            follow_redirects=False,
        )
    location = registered.headers["location"]
    assert registered.status_code == 302
    assert location.startswith("https://example.net/back?")
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == ["s1"]
    code = query["code"][0]
    first = httpx.post(f"{api}/app-manifests/{code}/conversions")
    assert first.status_code == 201
    assert first.json()["slug"] == "once"
    assert first.json()["pem"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    again = httpx.post(f"{api}/app-manifests/{code}/conversions")
    assert again.status_code == 404
    assert "pem" not in again.text

    fresh = sim.register_app_from_manifest(sim.user(OWNER), {**manifest, "name": "Later"})
    sim.expire_manifest_codes()
    late = httpx.post(f"{api}/app-manifests/{fresh.code}/conversions")
    assert late.status_code == 422
    assert "pem" not in late.text


@pytest.mark.parametrize(
    ("cookie", "path", "change", "status"),
    [
        (False, "/settings/apps/new", {}, 401),  # nobody signed in
        (True, "/settings/apps/new", {"redirect_url": "javascript:alert(1)"}, 422),
        (True, "/settings/apps/new", {"hook_attributes": {"url": "file:///etc/passwd"}}, 422),
        (True, "/settings/apps/new", {"evil": True}, 422),
        (True, "/settings/apps/new", {"name": "otto"}, 422),  # taken (the world's own App)
        (True, "/organizations/nobody/settings/apps/new", {}, 404),
        (True, f"/organizations/{OWNER}/settings/apps/new", {}, 404),  # a user, not an organization
    ],
)
def test_bad_registrations_are_refused(
    world: World, cookie: bool, path: str, change: dict[str, Any], status: int
) -> None:
    manifest = build_manifest(APP_YML, WEBHOOK, "https://example.net/back", name="Refused") | change
    apps_before = set(world.sim.apps)
    client = browser_for(world) if cookie else httpx.Client(timeout=30)
    with client:
        resp = client.post(
            f"{world.url}{path}?state=s", data={"manifest": json.dumps(manifest)}, follow_redirects=False
        )
    assert resp.status_code == status
    assert "location" not in resp.headers
    assert set(world.sim.apps) == apps_before


def test_org_registration_is_owned_by_the_org(world: World) -> None:
    world.sim.create_user("acme", type="Organization")
    manifest = build_manifest(APP_YML, WEBHOOK, "https://example.net/back", name="Acme Otto")
    with browser_for(world) as browser:
        resp = browser.post(
            f"{world.url}/organizations/acme/settings/apps/new?state=s",
            data={"manifest": json.dumps(manifest)},
            follow_redirects=False,
        )
    assert resp.status_code == 302
    assert world.sim.app_by_slug("acme-otto").owner.login == "acme"
    assert GitHubHost.from_url(world.url).new_app_url("s", "acme") == (
        f"{world.url}/organizations/acme/settings/apps/new?state=s"
    )


def test_setup_for_an_organization(world: World, tmp_path: Path) -> None:
    world.sim.create_user("acme", type="Organization")
    host = GitHubHost.from_url(world.url)
    flow = ManifestSetup(APP_YML, WEBHOOK, host, tmp_path / ".env", org="acme", name="Acme Otto")
    flow.start()
    try:
        with browser_for(world) as browser:
            page = browser.get(flow.url)
            assert only_form(page)["action"].startswith(f"{world.url}/organizations/acme/settings/apps/new?")
            assert submit(browser, page).status_code == 200
    finally:
        flow.stop()
    assert flow.result is not None
    assert flow.result.app.install_url.endswith("/apps/acme-otto/installations/new")
    assert world.sim.app_by_slug("acme-otto").owner.login == "acme"
    assert read_env(tmp_path / ".env")["OTTO_GITHUB_APP_ID"] == str(flow.result.app.id)


# --------------------------------------------------------------------------------------------- pure parts
def test_hosts() -> None:
    assert GitHubHost.from_url(None) == GitHubHost("https://github.com", "https://api.github.com")
    assert GitHubHost.from_url("https://github.com/") == GitHubHost(
        "https://github.com", "https://api.github.com"
    )
    ghes = GitHubHost.from_url("https://git.corp.example/")
    assert ghes == GitHubHost("https://git.corp.example", "https://git.corp.example/api/v3")
    for bad in ("git.corp.example", "ftp://x", "https://x/?a=b"):
        with pytest.raises(SetupError):
            GitHubHost.from_url(bad)


def test_manifest_from_app_yml() -> None:
    manifest = build_manifest(APP_YML, WEBHOOK, "http://127.0.0.1:9/callback")
    assert manifest["hook_attributes"] == {"url": WEBHOOK, "active": True}
    assert manifest["redirect_url"] == "http://127.0.0.1:9/callback"
    assert manifest["default_permissions"]["contents"] == "write"
    assert "installation" not in manifest["default_events"]
    with pytest.raises(SetupError):
        build_manifest(APP_YML, "javascript:alert(1)", "http://127.0.0.1:9/callback")
    with pytest.raises(SetupError):
        build_manifest(APP_YML + "\nsurprise: 1\n", WEBHOOK, "http://127.0.0.1:9/callback")


def test_merge_env_keeps_what_it_does_not_own() -> None:
    existing = (
        "# comment\nexport OTTO_MODEL=x\nOTTO_GITHUB_APP_ID=1\n"
        'OTTO_GITHUB_PRIVATE_KEY="-----BEGIN-----\nline\n-----END-----"\nOTTO_GITHUB_APP_ID=2\nLAST=y'
    )
    merged = merge_env(
        existing, {"OTTO_GITHUB_APP_ID": "77", "OTTO_WEBHOOK_SECRET": "it's"}, ("OTTO_GITHUB_PRIVATE_KEY",)
    )
    assert merged == (
        "# comment\nexport OTTO_MODEL=x\nOTTO_GITHUB_APP_ID='77'\nLAST=y\n\nOTTO_WEBHOOK_SECRET=\"it's\"\n"
    )
    with pytest.raises(SetupError):
        merge_env("", {"A": "two\nlines"})
