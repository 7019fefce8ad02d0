"""Scenario scripts: loading and validation, and how a request is routed to (role, key, step).

The format is documented in the package docstring (``app/dev/fake_llm/__init__.py``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ROLE_RE = re.compile(r"otto-role:\s*([a-z_]+)")
KEY_RE = re.compile(r"otto-task:\s*([A-Za-z0-9_.\-]+)")
RUN_PATTERN = r"[A-Za-z0-9_.\-]+/[A-Za-z0-9_.\-]+#[0-9]+"
RUN_RE = re.compile(rf"otto-run:\s*({RUN_PATTERN})")
ELIDED_RE = re.compile(r"\[otto-elided-turns: (\d{1,6})\]")

ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
ERROR_STATUS: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
STEP_FIELDS = frozenset(
    {"text", "json", "tool_use", "tool_uses", "stop_reason", "usage", "errors", "malformed", "hold"}
    | {"stream_error"}
)
ERROR_FIELDS = frozenset(
    {"status", "type", "message", "retry_after_ms", "should_retry", "hold", "malformed", "mid_stream"}
)
USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


JSONDict = dict[str, Any]
# role -> key -> steps
Scenario = dict[str, dict[str, list[JSONDict]]]


class ScenarioError(ValueError):
    """The scenario script is not well-formed."""


# ---------------------------------------------------------------------------------------------------
# Scenario loading and validation


def load_scenario(source: Mapping[str, Any] | Path | str | None) -> Scenario:
    """Parse and validate a scenario (dict, or path to a YAML/JSON file) into role -> key -> steps."""
    if source is None:
        return {}
    if isinstance(source, str | Path):
        raw: Any = yaml.safe_load(Path(source).read_text(encoding="utf-8"))  # JSON is YAML too
        where = str(source)
    else:
        raw, where = source, "scenario"
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ScenarioError(f"{where}: top level must be a mapping role -> steps")
    scenario: Scenario = {}
    for role, script in raw.items():
        if isinstance(script, list):
            script = {"*": script}
        if not isinstance(script, Mapping):
            raise ScenarioError(f"{where}: role {role!r} must map to a list of steps or key -> steps")
        scenario[str(role)] = {}
        for key, steps in script.items():
            if not isinstance(steps, list):
                raise ScenarioError(f"{where}: {role}/{key} must be a list of steps")
            scenario[str(role)][str(key)] = [
                _check_step(step, f"{where}: {role}/{key} step {i}") for i, step in enumerate(steps)
            ]
    return scenario


def _check_step(step: Any, where: str) -> JSONDict:
    if isinstance(step, str):
        return {"text": step}
    if step is None:
        return {}
    if not isinstance(step, Mapping):
        raise ScenarioError(f"{where}: a step must be a mapping or a string")
    unknown = set(step) - STEP_FIELDS
    if unknown:
        raise ScenarioError(f"{where}: unknown fields {sorted(unknown)} (allowed: {sorted(STEP_FIELDS)})")
    if "text" in step and "json" in step:
        raise ScenarioError(f"{where}: give either text or json, not both")
    if "text" in step and not isinstance(step["text"], str):
        raise ScenarioError(f"{where}: text must be a string")
    calls = tool_calls(dict(step))
    for call in calls:
        if not isinstance(call, Mapping) or not isinstance(call.get("name"), str):
            raise ScenarioError(f"{where}: each tool use needs a name (and an input mapping)")
        if not isinstance(call.get("input", {}), Mapping):
            raise ScenarioError(f"{where}: tool use input must be a mapping")
    errors = step.get("errors", [])
    if not isinstance(errors, list):
        raise ScenarioError(f"{where}: errors must be a list")
    for i, err in enumerate(errors):
        if not isinstance(err, Mapping) or set(err) - ERROR_FIELDS:
            raise ScenarioError(f"{where}: errors[{i}] must be a mapping with fields {sorted(ERROR_FIELDS)}")
    usage = step.get("usage", {})
    if not isinstance(usage, Mapping) or set(usage) - set(USAGE_FIELDS):
        raise ScenarioError(f"{where}: usage may only set {list(USAGE_FIELDS)}")
    _check_answers(step, errors, where)
    se = step.get("stream_error")
    if se is not None and not isinstance(se, Mapping):
        raise ScenarioError(f"{where}: stream_error must be a mapping {{type, message}}")
    return dict(step)


def _check_answers(step: Mapping[str, Any], errors: list[Any], where: str) -> None:
    """``malformed`` and ``hold`` of the step and of its errors."""
    for where_x, spec in [("", step)] + [(f"errors[{i}].", e) for i, e in enumerate(errors)]:
        if spec.get("malformed") not in (None, True, False, "html"):
            raise ScenarioError(f"{where}: {where_x}malformed must be true or html")
        if not isinstance(spec.get("hold", ""), str):
            raise ScenarioError(f"{where}: {where_x}hold must be a name (a string)")


def tool_calls(step: JSONDict) -> list[Any]:
    calls: list[Any] = []
    if "tool_use" in step:
        calls.append(step["tool_use"])
    if "tool_uses" in step:
        if not isinstance(step["tool_uses"], list):
            raise ScenarioError("tool_uses must be a list")
        calls.extend(step["tool_uses"])
    return calls


# Request routing


def run_name(run: str) -> str:
    """``run`` (``owner/name#N``) as scripts and records key it: GitHub's names ignore case."""
    if not re.fullmatch(RUN_PATTERN, run):
        raise ScenarioError(f"run must look like owner/name#N, not {run!r}")
    return run.lower()


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(b.get("text", "")) for b in content if isinstance(b, dict) and b.get("type") == "text"
        )
    return ""


def identify(body: Mapping[str, Any]) -> tuple[str, str, int]:
    """(role, key, step) of a Messages API request body, per the contract in the module docstring."""
    system = text_of(body.get("system"))
    messages = body.get("messages")
    messages = messages if isinstance(messages, list) else []
    m = ROLE_RE.search(system)
    role = m.group(1) if m else "unknown"
    k = KEY_RE.search(system)
    if k is None:
        first_user = next((x for x in messages if isinstance(x, dict) and x.get("role") == "user"), None)
        if first_user is not None:
            k = KEY_RE.search(text_of(first_user.get("content")))
    key = k.group(1) if k else "*"
    step = sum(1 for x in messages if isinstance(x, dict) and x.get("role") == "assistant")
    first = messages[0] if messages and isinstance(messages[0], dict) else {}
    blocks = first.get("content")
    if isinstance(blocks, list) and len(blocks) > 1 and isinstance(blocks[-1], dict):
        # turns the agent removed to save room still count: its note, a text block of its own at the end
        m = ELIDED_RE.match(str(blocks[-1].get("text", "")))
        step += int(m.group(1)) if m else 0
    return role, key, step


def run_of(body: Mapping[str, Any]) -> str:
    """The run a request belongs to, from the ``otto-run: owner/name#N`` line of its system prompt ("" if
    none), lower-cased."""
    m = RUN_RE.search(text_of(body.get("system")))
    return m.group(1).lower() if m else ""
