"""POST /api/graphql: the two pull-request draft mutations Otto needs, answered like GitHub's GraphQL API."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse

from app.dev.simulator.errors import ApiError
from app.dev.simulator.http_util import acting_user, authenticate, json, sim_of

router = APIRouter()
MUTATIONS = {"markPullRequestReadyForReview": False, "convertPullRequestToDraft": True}


def _error(message: str, kind: str = "UNPROCESSABLE") -> JSONResponse:
    return json({"data": None, "errors": [{"type": kind, "message": message}]})


def _selection(query: str, field: str) -> list[str]:
    match = re.search(rf"\b{field}\s*\{{([^{{}}]*)\}}", query)
    return re.findall(r"[A-Za-z_]\w*", match.group(1)) if match else []


def _pull_request_id(query: str, variables: dict[str, Any]) -> str | None:
    literal = re.search(r'pullRequestId\s*:\s*"([^"]+)"', query)
    if literal:
        return literal.group(1)
    variable = re.search(r"pullRequestId\s*:\s*\$(\w+)", query)
    if variable:
        value = variables.get(variable.group(1))
        return str(value) if value is not None else None
    whole = re.search(r"input\s*:\s*\$(\w+)", query)
    if whole and isinstance(variables.get(whole.group(1)), dict):
        value = variables[whole.group(1)].get("pullRequestId")
        return str(value) if value is not None else None
    return None


@router.post("/api/graphql")
def graphql(request: Request, body: Annotated[Any, Body()] = None) -> JSONResponse:
    actor = authenticate(request)
    sim = sim_of(request)
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        raise ApiError(400, "Problems parsing JSON")
    query: str = body["query"]
    variables = body.get("variables") or {}
    name = next((m for m in MUTATIONS if re.search(rf"\b{m}\s*\(", query)), None)
    if name is None:
        return _error(
            "This simulator supports only markPullRequestReadyForReview and convertPullRequestToDraft"
        )
    pr_id = _pull_request_id(query, variables)
    with sim.lock:
        found = next(
            ((r, p) for r in sim.repos.values() for p in r.pulls.values() if p.node_id == pr_id), None
        )
        if found is None:
            return _error(f"Could not resolve to a node with the global id of '{pr_id}'", "NOT_FOUND")
        r, pull = found
        sim.access_repo(actor, r.owner.login, r.name, need="write")
        sim.set_draft(r, pull, MUTATIONS[name], acting_user(actor))
        known: dict[str, Any] = {
            "id": pull.node_id,
            "number": pull.number,
            "isDraft": pull.draft,
            "state": pull.state.upper() if not pull.merged else "MERGED",
            "title": pull.title,
            "url": f"{sim.base_url}/{r.full_name}/pull/{pull.number}",
            "headRefOid": pull.last_head_sha,
            "__typename": "PullRequest",
        }
    fields = _selection(query, "pullRequest") or ["id", "isDraft"]
    unknown = [f for f in fields if f not in known]
    if unknown:
        return _error(f"Field '{unknown[0]}' doesn't exist on type 'PullRequest'", "undefinedField")
    result: dict[str, Any] = {"pullRequest": {f: known[f] for f in fields}}
    if re.search(r"\bclientMutationId\b", query):
        result["clientMutationId"] = None
    return json({"data": {name: result}})
