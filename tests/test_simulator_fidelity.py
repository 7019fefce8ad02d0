"""Every implemented REST endpoint answers JSON that validates against GitHub's own REST description
(``.cache/octokit/api.github.com.json``, OpenAPI 3.0.3: ``nullable`` becomes a JSON-schema null union)."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from app.dev.simulator import Simulator
from tests.conftest_sim import APP_ID, OWNER, REPO, SECRET, Servers, load_json, rsa_pair, sim_servers_fixture  # noqa: F401

SKIPPED_KEYWORDS = {
    "nullable",
    "example",
    "examples",
    "discriminator",
    "xml",
    "externalDocs",
    "deprecated",
    "readOnly",
    "writeOnly",
}


class OpenApi:
    """Converts OpenAPI 3.0 schemas to draft-7 JSON schemas on demand (component by component)."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.components: dict[str, Any] = {}

    def ref(self, pointer: str) -> dict[str, Any]:
        name = pointer.rsplit("/", 1)[-1]
        if name not in self.components:
            self.components[name] = {}
            self.components[name] = self.schema(self.doc["components"]["schemas"][name])
        return {"$ref": f"urn:gh:{name}"}

    def schema(self, node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            return self.ref(node["$ref"])
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in SKIPPED_KEYWORDS:
                continue
            if key in ("properties", "patternProperties"):
                out[key] = {name: self.schema(sub) for name, sub in value.items()}
            elif key in ("items", "additionalProperties", "not"):
                out[key] = self.schema(value)
            elif key in ("allOf", "anyOf", "oneOf"):
                # oneOf → anyOf: GitHub's alternatives overlap (a file also fits a looser variant)
                out["anyOf" if key == "oneOf" else key] = [self.schema(sub) for sub in value]
            else:
                out[key] = value
        if node.get("nullable"):
            if "type" in out:
                out["type"] = [out["type"], "null"]
                if "enum" in out:
                    out["enum"] = [*out["enum"], None]
            else:
                return {"anyOf": [out, {"type": "null"}]}
        return out

    def response_schema(self, template: str, method: str, status: int) -> dict[str, Any] | None:
        response = self.doc["paths"][template][method]["responses"][str(status)]
        if "$ref" in response:
            response = self.doc["components"]["responses"][response["$ref"].rsplit("/", 1)[-1]]
        content = response.get("content", {}).get("application/json")
        return None if content is None else self.schema(content["schema"])

    def validator(self, schema: dict[str, Any]) -> jsonschema.Draft7Validator:
        registry: Registry[Any] = Registry().with_resources(
            (f"urn:gh:{name}", Resource(contents=body, specification=DRAFT7))  # type: ignore[call-arg]
            for name, body in self.components.items()
        )
        return jsonschema.Draft7Validator(schema, registry=registry)


@functools.cache
def openapi() -> OpenApi:
    return OpenApi(load_json("api.github.com.json"))


@dataclass
class Scene:
    sim: Simulator
    url: str
    jwt_headers: dict[str, str]
    token_headers: dict[str, str]
    ids: dict[str, Any]
    http: httpx.Client


@pytest.fixture(scope="module")
def scene(sim_servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    import jwt

    private, public = rsa_pair()
    sim = Simulator(tmp_path_factory.mktemp("fidelity"), base_url=sim_servers.simulator.url)
    sim_servers.app.state.sim = sim
    sim.register_app(APP_ID, "otto", public, webhook_url=None, webhook_secret=SECRET)
    sim.create_user(OWNER)
    sim.create_user("bob")
    sim.create_repo(OWNER, REPO, {"README.md": "# Demo\n", "src/app.py": "x = 1\n"})
    sim.set_permission(OWNER, REPO, "bob", "write")
    installation = sim.install_app(APP_ID, OWNER)
    import time

    now = int(time.time())
    app_jwt = jwt.encode({"iat": now - 60, "exp": now + 540, "iss": str(APP_ID)}, private, algorithm="RS256")
    jwt_headers = {"Authorization": f"Bearer {app_jwt}", "Accept": "application/vnd.github+json"}
    http = httpx.Client(timeout=30)
    token = http.post(
        f"{sim.base_url}/api/v3/app/installations/{installation}/access_tokens", headers=jwt_headers
    ).json()["token"]
    token_headers = {"Authorization": f"token {token}", "Accept": "application/vnd.github+json"}

    issue = sim.create_issue(OWNER, REPO, "Issue", "body", OWNER)
    sim.add_label(OWNER, REPO, issue, "bug", OWNER)
    sim.add_label(OWNER, REPO, issue, "keep", OWNER)
    sim.comment(OWNER, REPO, issue, "first", "bob")
    comment = sim.comments(OWNER, REPO, issue)[0].id
    sim.push_commit(OWNER, REPO, "feature", {"src/app.py": "x = 2\n", "new.txt": "n\n"}, "feature", "bob")
    sim.push_commit(OWNER, REPO, "to-merge", {"merge.txt": "m\n"}, "to merge", "bob")
    sim.push_commit(OWNER, REPO, "to-open", {"open.txt": "o\n"}, "to open", "bob")
    sim.push_commit(OWNER, REPO, "to-delete", {"d.txt": "d\n"}, "to delete", "bob")
    api = f"{sim.base_url}/api/v3"
    pr = http.post(
        f"{api}/repos/{OWNER}/{REPO}/pulls",
        headers=token_headers,
        json={"title": "Feature", "head": "feature", "base": "main", "draft": True},
    ).json()["number"]
    merge_pr = http.post(
        f"{api}/repos/{OWNER}/{REPO}/pulls",
        headers=token_headers,
        json={"title": "Merge me", "head": "to-merge", "base": "main"},
    ).json()["number"]
    sim.push_commit(OWNER, REPO, "merged", {"merged.txt": "m\n"}, "merged", "bob")
    merged_pr = http.post(
        f"{api}/repos/{OWNER}/{REPO}/pulls",
        headers=token_headers,
        json={"title": "Merged", "head": "merged", "base": "main"},
    ).json()["number"]
    merged = http.put(f"{api}/repos/{OWNER}/{REPO}/pulls/{merged_pr}/merge", headers=token_headers, json={})
    assert merged.status_code == 200, merged.text
    sim.create_user(ORG, type="Organization")
    sim.install_app(APP_ID, ORG)
    sim.submit_review(
        OWNER,
        REPO,
        pr,
        OWNER,
        "COMMENTED",
        "hm",
        comments=[{"path": "src/app.py", "line": 1, "body": "why 2?"}],
    )
    review = sim.reviews(OWNER, REPO, pr)[0]
    sha = sim.branches(OWNER, REPO)["feature"]
    run = sim.post_check_run(APP_ID, OWNER, REPO, sha, "otto/verify", conclusion=None, status="in_progress")
    ids = {
        "issue": issue,
        "comment": comment,
        "pr": pr,
        "merge_pr": merge_pr,
        "review": review.id,
        "review_comment": review.comment_ids[0],
        "sha": sha,
        "run": run.id,
        "installation": installation,
        "main": sim.branches(OWNER, REPO)["main"],
        "merged_pr": merged_pr,
        "manifest_code": sim.register_app_from_manifest(sim.user(OWNER), manifest("From a manifest")).code,
        "used_manifest_code": sim.register_app_from_manifest(sim.user(OWNER), manifest("Used once")).code,
    }
    # a code already exchanged: the 404 case must not depend on another case having run first (xdist)
    used = http.post(f"{sim.base_url}/api/v3/app-manifests/{ids['used_manifest_code']}/conversions")
    assert used.status_code == 201, used.text
    try:
        yield Scene(sim, sim.base_url, jwt_headers, token_headers, ids, http)
    finally:
        http.close()
        sim.wait_for_deliveries_idle(10)
        sim.close()


def manifest(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "url": "https://example.net",
        "redirect_url": "https://example.net/back",
        "hook_attributes": {"url": "https://example.net/webhooks"},
        "default_permissions": {"issues": "write"},
        "default_events": ["issues"],
    }


R = f"/repos/{OWNER}/{REPO}"
ORG = "acme"
# (method, OpenAPI path template, concrete path, JSON body, expected status, auth)
CASES: list[tuple[str, str, str, Any, int, str]] = [
    ("get", "/app", "/app", None, 200, "jwt"),
    ("get", "/app/installations/{installation_id}", "/app/installations/{installation}", None, 200, "jwt"),
    (
        "post",
        "/app/installations/{installation_id}/access_tokens",
        "/app/installations/{installation}/access_tokens",
        None,
        201,
        "jwt",
    ),
    ("get", "/repos/{owner}/{repo}/installation", R + "/installation", None, 200, "jwt"),
    ("get", "/users/{username}", "/users/otto[bot]", None, 200, "token"),
    ("get", "/users/{username}", f"/users/{OWNER}", None, 200, "token"),
    ("get", "/repos/{owner}/{repo}", R, None, 200, "token"),
    (
        "get",
        "/repos/{owner}/{repo}/collaborators/{username}/permission",
        R + "/collaborators/bob/permission",
        None,
        200,
        "token",
    ),
    ("get", "/repos/{owner}/{repo}/issues/{issue_number}", R + "/issues/{issue}", None, 200, "token"),
    ("get", "/repos/{owner}/{repo}/issues/{issue_number}", R + "/issues/{pr}", None, 200, "token"),
    ("get", "/repos/{owner}/{repo}/issues/{issue_number}", R + "/issues/999", None, 404, "token"),
    (
        "patch",
        "/repos/{owner}/{repo}/issues/{issue_number}",
        R + "/issues/{issue}",
        {"title": "Renamed"},
        200,
        "token",
    ),
    (
        "get",
        "/repos/{owner}/{repo}/issues/{issue_number}/comments",
        R + "/issues/{issue}/comments",
        None,
        200,
        "token",
    ),
    (
        "post",
        "/repos/{owner}/{repo}/issues/{issue_number}/comments",
        R + "/issues/{issue}/comments",
        {"body": "from the App"},
        201,
        "token",
    ),
    (
        "get",
        "/repos/{owner}/{repo}/issues/comments/{comment_id}",
        R + "/issues/comments/{comment}",
        None,
        200,
        "token",
    ),
    (
        "patch",
        "/repos/{owner}/{repo}/issues/comments/{comment_id}",
        R + "/issues/comments/{comment}",
        {"body": "edited"},
        200,
        "token",
    ),
    (
        "post",
        "/repos/{owner}/{repo}/issues/{issue_number}/reactions",
        R + "/issues/{issue}/reactions",
        {"content": "eyes"},
        201,
        "token",
    ),
    (
        "get",
        "/repos/{owner}/{repo}/issues/{issue_number}/reactions",
        R + "/issues/{issue}/reactions",
        None,
        200,
        "token",
    ),
    (
        "post",
        "/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions",
        R + "/issues/comments/{comment}/reactions",
        {"content": "+1"},
        201,
        "token",
    ),
    (
        "get",
        "/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions",
        R + "/issues/comments/{comment}/reactions",
        None,
        200,
        "token",
    ),
    (
        "post",
        "/repos/{owner}/{repo}/issues/{issue_number}/labels",
        R + "/issues/{issue}/labels",
        {"labels": ["extra"]},
        200,
        "token",
    ),
    (
        "get",
        "/repos/{owner}/{repo}/issues/{issue_number}/labels",
        R + "/issues/{issue}/labels",
        None,
        200,
        "token",
    ),
    (
        "delete",
        "/repos/{owner}/{repo}/issues/{issue_number}/labels/{name}",
        R + "/issues/{issue}/labels/bug",
        None,
        200,
        "token",
    ),
    ("get", "/repos/{owner}/{repo}/contents/{path}", R + "/contents/src/app.py?ref=main", None, 200, "token"),
    ("get", "/repos/{owner}/{repo}/contents/{path}", R + "/contents/src", None, 200, "token"),
    ("get", "/repos/{owner}/{repo}/contents/{path}", R + "/contents/missing.txt", None, 404, "token"),
    ("get", "/repos/{owner}/{repo}/branches", R + "/branches", None, 200, "token"),
    ("get", "/repos/{owner}/{repo}/branches/{branch}", R + "/branches/main", None, 200, "token"),
    ("get", "/repos/{owner}/{repo}/git/ref/{ref}", R + "/git/ref/heads/main", None, 200, "token"),
    (
        "post",
        "/repos/{owner}/{repo}/git/refs",
        R + "/git/refs",
        {"ref": "refs/heads/created", "sha": "{main}"},
        201,
        "token",
    ),
    ("delete", "/repos/{owner}/{repo}/git/refs/{ref}", R + "/git/refs/heads/to-delete", None, 204, "token"),
    ("get", "/repos/{owner}/{repo}/pulls", R + "/pulls?state=all", None, 200, "token"),
    (
        "post",
        "/repos/{owner}/{repo}/pulls",
        R + "/pulls",
        {"title": "Open", "head": "to-open", "base": "main"},
        201,
        "token",
    ),
    (
        "post",
        "/repos/{owner}/{repo}/pulls",
        R + "/pulls",
        {"title": "Dup", "head": "feature", "base": "main"},
        422,
        "token",
    ),
    ("get", "/repos/{owner}/{repo}/pulls/{pull_number}", R + "/pulls/{pr}", None, 200, "token"),
    (
        "patch",
        "/repos/{owner}/{repo}/pulls/{pull_number}",
        R + "/pulls/{pr}",
        {"body": "new body"},
        200,
        "token",
    ),
    ("get", "/repos/{owner}/{repo}/pulls/{pull_number}/files", R + "/pulls/{pr}/files", None, 200, "token"),
    (
        "get",
        "/repos/{owner}/{repo}/pulls/{pull_number}/commits",
        R + "/pulls/{pr}/commits",
        None,
        200,
        "token",
    ),
    ("put", "/repos/{owner}/{repo}/pulls/{pull_number}/merge", R + "/pulls/{pr}/merge", {}, 405, "token"),
    (
        "put",
        "/repos/{owner}/{repo}/pulls/{pull_number}/merge",
        R + "/pulls/{merge_pr}/merge",
        {"sha": "0" * 40},
        409,
        "token",
    ),
    (
        "put",
        "/repos/{owner}/{repo}/pulls/{pull_number}/merge",
        R + "/pulls/{merge_pr}/merge",
        {"merge_method": "squash"},
        200,
        "token",
    ),
    (
        "get",
        "/repos/{owner}/{repo}/pulls/{pull_number}/reviews",
        R + "/pulls/{pr}/reviews",
        None,
        200,
        "token",
    ),
    (
        "post",
        "/repos/{owner}/{repo}/pulls/{pull_number}/reviews",
        R + "/pulls/{pr}/reviews",
        {"event": "COMMENT", "body": "bot review"},
        200,
        "token",
    ),
    (
        "get",
        "/repos/{owner}/{repo}/pulls/{pull_number}/reviews/{review_id}/comments",
        R + "/pulls/{pr}/reviews/{review}/comments",
        None,
        200,
        "token",
    ),
    (
        "get",
        "/repos/{owner}/{repo}/pulls/{pull_number}/comments",
        R + "/pulls/{pr}/comments",
        None,
        200,
        "token",
    ),
    (
        "get",
        "/repos/{owner}/{repo}/pulls/comments/{comment_id}",
        R + "/pulls/comments/{review_comment}",
        None,
        200,
        "token",
    ),
    (
        "post",
        "/repos/{owner}/{repo}/check-runs",
        R + "/check-runs",
        {"name": "lint", "head_sha": "{sha}"},
        201,
        "token",
    ),
    (
        "patch",
        "/repos/{owner}/{repo}/check-runs/{check_run_id}",
        R + "/check-runs/{run}",
        {"conclusion": "failure", "output": {"title": "t", "summary": "s"}},
        200,
        "token",
    ),
    ("get", "/repos/{owner}/{repo}/check-runs/{check_run_id}", R + "/check-runs/{run}", None, 200, "token"),
    (
        "get",
        "/repos/{owner}/{repo}/commits/{ref}/check-runs",
        R + "/commits/{sha}/check-runs",
        None,
        200,
        "token",
    ),
    # --- what a second client (PyGithub) needed ---------------------------------------------------------
    ("get", "/orgs/{org}/installation", f"/orgs/{ORG}/installation", None, 200, "jwt"),
    ("get", "/users/{username}/installation", f"/users/{OWNER}/installation", None, 200, "jwt"),
    ("get", "/rate_limit", "/rate_limit", None, 200, "token"),
    ("get", "/rate_limit", "/rate_limit", None, 200, "jwt"),
    ("get", "/repos/{owner}/{repo}/issues", R + "/issues?state=all&labels=keep", None, 200, "token"),
    ("get", "/repos/{owner}/{repo}/issues", R + "/issues?state=nope", None, 422, "token"),
    (
        "post",
        "/repos/{owner}/{repo}/issues",
        R + "/issues",
        {"title": "Filed by the App", "body": "b", "labels": ["bug", "new-label"]},
        201,
        "token",
    ),
    ("post", "/repos/{owner}/{repo}/issues", R + "/issues", {"body": "no title"}, 422, "token"),
    ("get", "/repos/{owner}/{repo}/issues/comments", R + "/issues/comments", None, 200, "token"),
    ("get", "/repos/{owner}/{repo}/labels", R + "/labels", None, 200, "token"),
    ("get", "/repos/{owner}/{repo}/labels/{name}", R + "/labels/keep", None, 200, "token"),
    ("get", "/repos/{owner}/{repo}/labels/{name}", R + "/labels/absent", None, 404, "token"),
    (
        "post",
        "/repos/{owner}/{repo}/labels",
        R + "/labels",
        {"name": "good first issue", "color": "7057ff", "description": "Easy"},
        201,
        "token",
    ),
    ("post", "/repos/{owner}/{repo}/labels", R + "/labels", {"name": "BUG"}, 422, "token"),
    ("get", "/repos/{owner}/{repo}/commits", R + "/commits?per_page=2", None, 200, "token"),
    ("get", "/repos/{owner}/{repo}/commits/{ref}", R + "/commits/{sha}", None, 200, "token"),
    ("get", "/repos/{owner}/{repo}/commits/{ref}", R + "/commits/main", None, 200, "token"),
    ("get", "/repos/{owner}/{repo}/commits/{ref}", R + "/commits/" + "0" * 40, None, 422, "token"),
    (
        "get",
        "/repos/{owner}/{repo}/pulls/{pull_number}/reviews/{review_id}",
        R + "/pulls/{pr}/reviews/{review}",
        None,
        200,
        "token",
    ),
    (
        "post",
        "/repos/{owner}/{repo}/pulls/{pull_number}/reviews",
        R + "/pulls/{pr}/reviews",
        {"event": "APPROVE"},
        422,
        "token",
    ),
    (
        "get",
        "/repos/{owner}/{repo}/pulls/{pull_number}/merge",
        R + "/pulls/{merged_pr}/merge",
        None,
        204,
        "token",
    ),
    ("get", "/repos/{owner}/{repo}/pulls/{pull_number}/merge", R + "/pulls/{pr}/merge", None, 404, "token"),
    # the App-manifest flow's code exchange (no credentials: the code is one)
    (
        "post",
        "/app-manifests/{code}/conversions",
        "/app-manifests/{manifest_code}/conversions",
        None,
        201,
        "none",
    ),
    (
        "post",
        "/app-manifests/{code}/conversions",
        "/app-manifests/{used_manifest_code}/conversions",
        None,
        404,
        "none",
    ),
]


def fill(value: Any, ids: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return re.sub(r"\{(\w+)\}", lambda m: str(ids[m.group(1)]), value)
    if isinstance(value, dict):
        return {k: fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, ids) for v in value]
    return value


@pytest.mark.parametrize(
    ("method", "template", "path", "body", "status", "auth"),
    CASES,
    ids=[f"{c[0].upper()} {c[2]} {c[4]}" for c in CASES],
)
def test_response_matches_githubs_rest_description(
    scene: Scene,
    sim_servers: Servers,
    method: str,
    template: str,
    path: str,
    body: Any,
    status: int,
    auth: str,
) -> None:
    sim_servers.app.state.sim = scene.sim
    headers = {"jwt": scene.jwt_headers, "token": scene.token_headers}.get(
        auth, {"Accept": "application/vnd.github+json"}
    )
    resp = scene.http.request(
        method.upper(),
        f"{scene.url}/api/v3{fill(path, scene.ids)}",
        headers=headers,
        json=fill(body, scene.ids) if body is not None else None,
    )
    assert resp.status_code == status, resp.text
    schema = openapi().response_schema(template, method, status)
    if status == 204 or (schema is None and status >= 400):  # documented without a body
        assert resp.content == b""
        return
    assert schema is not None, f"GitHub documents no JSON body for {method} {template} {status}"
    errors = sorted(openapi().validator(schema).iter_errors(resp.json()), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message[:300]}" for e in errors[:10])


def test_octokit_description_is_present() -> None:
    path = Path(__file__).resolve().parent.parent / ".cache" / "octokit" / "api.github.com.json"
    assert path.exists(), "run `make test` to fetch GitHub's REST description"
