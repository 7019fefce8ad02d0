"""The scripted server: shared state (script, error counters, prompt cache, records) and the ASGI app."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import secrets
import string
import threading
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from app.dev.fake_llm.prompt import MAX_BREAKPOINTS, PromptCache, breakpoint_count, prompt_tokens, tokens
from app.dev.fake_llm.scenario import (
    ERROR_STATUS,
    ERROR_TYPES,
    JSONDict,
    Scenario,
    ScenarioError,
    identify,
    load_scenario,
    run_name,
    run_of,
    tool_calls,
)

DEFAULT_CONTEXT_WINDOW = 200_000  # tokens, as Claude's standard window
HOLD_TIMEOUT_S = 120.0  # a hold nobody releases answers after this long (a forgotten hold can't hang tests)
_HOLD_POLL_S = 0.02
_SECRET_HEADERS = frozenset({"authorization", "x-api-key"})
_ALNUM = string.ascii_letters + string.digits


def _rand(prefix: str, n: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(n))


# ---------------------------------------------------------------------------------------------------
# The fake


@dataclass
class RecordedRequest:
    """One request to ``POST /v1/messages`` as the server saw it and answered it."""

    role: str
    key: str
    step: int
    body: JSONDict | None
    headers: dict[str, str]
    status: int = 0
    stream: bool = False
    error_type: str | None = None  # set for HTTP errors and mid-stream errors; "client_closed" (status 499):
    # the client went away before the (held) answer, so nothing was served
    at: float = field(default_factory=time.time)
    usage: JSONDict | None = None  # the usage the answer reported (answers with status 200)
    run: str = ""  # the run it belongs to (``owner/name#N``, lower-cased; "" when its prompt names none)

    def to_dict(self) -> JSONDict:
        return {
            "role": self.role,
            "key": self.key,
            "run": self.run,
            "step": self.step,
            "body": self.body,
            "headers": self.headers,
            "status": self.status,
            "stream": self.stream,
            "error_type": self.error_type,
            "at": self.at,
            "usage": self.usage,
        }


class Hold:
    """A named hold: requests reaching it wait until it is released (a latch: once released, later
    requests pass at once), their client goes away, or the hold's time is up."""

    def __init__(self) -> None:
        self.released = threading.Event()
        self.requests: list[RecordedRequest] = []  # every request that reached it, in order
        self.waiting = 0  # how many wait now


class FakeLLM:
    """Scenario state shared by the server routes (thread-safe: the server runs in another thread)."""

    def __init__(
        self,
        scenario: Mapping[str, Any] | Path | str | None = None,
        api_key: str | None = None,
        *,
        context_window: int | None = DEFAULT_CONTEXT_WINDOW,
        min_cache_tokens: int = 0,
        hold_timeout_s: float = HOLD_TIMEOUT_S,
    ) -> None:
        """``context_window``: prompts with more tokens get the API's 400 ``prompt is too long``, and output
        that would overflow it stops with ``model_context_window_exceeded`` (None: unbounded).
        ``min_cache_tokens``: shorter prefixes are not cached (see :mod:`app.dev.fake_llm.prompt`).
        ``hold_timeout_s``: a held request nobody releases is answered after this long."""
        self.api_key = api_key
        self.context_window = context_window
        self.hold_timeout_s = hold_timeout_s
        self._lock = threading.Lock()
        self._scenario: Scenario = {}
        self._runs: dict[str, Scenario] = {}  # run -> its own script
        self._holds: dict[str, Hold] = {}
        self._outage: int | None = None  # every request answered this error status (529: overloaded)
        self._closed = False
        self._errors_served: dict[tuple[str, str, str, int], int] = {}
        self._cache = PromptCache(min_cache_tokens)
        self._requests: list[RecordedRequest] = []
        self._received: list[RecordedRequest] = []
        self.load(scenario)

    # -- scenario and records ----------------------------------------------------------------------

    def load(self, scenario: Mapping[str, Any] | Path | str | None, run: str | None = None) -> None:
        """Without ``run``: replace the default script (for requests of runs without a script of their own),
        forget every run's script, reset error counters, the simulated prompt cache, the records and the
        holds (releasing any request still held).

        With ``run`` (``owner/name#N``): give that run a script of its own, used for every request naming
        it (``otto-run:``), and reset that run's error counters; everything else is kept."""
        parsed = load_scenario(scenario)
        if run is not None:
            name = run_name(run)
            with self._lock:
                self._runs[name] = parsed
                for k in [k for k in self._errors_served if k[0] == name]:
                    del self._errors_served[k]
            return
        with self._lock:
            self._scenario = parsed
            self._runs.clear()
        self.reset()

    def reset(self) -> None:
        """Keep the scripts; reset error counters, the simulated prompt cache, the records and the holds
        (releasing any request still held)."""
        with self._lock:
            self._errors_served.clear()
            self._cache.clear()
            self._requests.clear()
            self._received.clear()
            holds, self._holds = self._holds, {}
        for hold in holds.values():
            hold.released.set()

    def outage(self, status: int = 529) -> None:
        """The API down: every request is answered ``status`` (529 overloaded, 500, 503...) until
        :meth:`end_outage`; no script step is used up."""
        with self._lock:
            self._outage = status

    def end_outage(self) -> None:
        with self._lock:
            self._outage = None

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()
            self._received.clear()

    @property
    def scenario(self) -> Scenario:
        with self._lock:
            return self._scenario

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every recorded request, oldest first."""
        with self._lock:
            return list(self._requests)

    def requests_for(
        self, role: str, key: str | None = None, run: str | None = None
    ) -> list[RecordedRequest]:
        return _matching(self.requests, role, key, run)

    @property
    def received(self) -> list[RecordedRequest]:
        """Every request as it arrived, oldest first, answered or not yet (a held answer is still on its
        way: ``status`` 0). ``requests`` lists them once answered."""
        with self._lock:
            return list(self._received)

    def received_for(
        self, role: str, key: str | None = None, run: str | None = None
    ) -> list[RecordedRequest]:
        return _matching(self.received, role, key, run)

    def served(self) -> list[RecordedRequest]:
        """The answers the clients received with a message (status 200, the client still there)."""
        return [r for r in self.requests if r.status == 200 and r.error_type is None]

    def _record(self, rec: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(rec)

    def _receive(self, rec: RecordedRequest) -> None:
        with self._lock:
            self._received.append(rec)

    # -- holds ---------------------------------------------------------------------------------------

    def _hold(self, name: str) -> Hold:
        with self._lock:
            hold = self._holds.get(name)
            if hold is None:
                hold = self._holds[name] = Hold()
                if self._closed:
                    hold.released.set()
            return hold

    def release(self, name: str) -> None:
        """Let the requests held at ``name`` (now or later) be answered."""
        self._hold(name).released.set()

    def release_all(self) -> None:
        """Release every hold, now and later (the server is stopping: nothing may wait on a test)."""
        with self._lock:
            self._closed = True
            holds = list(self._holds.values())
        for hold in holds:
            hold.released.set()

    def holding(self, name: str) -> int:
        """How many requests wait at hold ``name`` now."""
        with self._lock:
            hold = self._holds.get(name)
            return hold.waiting if hold else 0

    async def held(self, name: str, count: int = 1, within: float = 60.0) -> RecordedRequest:
        """Wait until ``count`` requests have reached hold ``name`` (e.g. the model is "in the middle of" a
        step); the ``count``-th of them. Works from any event loop (the server runs in its own thread)."""
        hold = self._hold(name)
        deadline = time.monotonic() + within
        while True:
            with self._lock:
                if len(hold.requests) >= count:
                    return hold.requests[count - 1]
            if time.monotonic() >= deadline:
                raise AssertionError(f"{count} request(s) did not reach hold {name!r} within {within}s")
            await asyncio.sleep(_HOLD_POLL_S)

    async def _wait_at(self, name: str, rec: RecordedRequest, request: Request) -> bool:
        """Hold ``rec`` at ``name`` until released or timed out (True) or its client is gone (False)."""
        hold = self._hold(name)
        with self._lock:
            hold.requests.append(rec)
            hold.waiting += 1
        try:
            deadline = time.monotonic() + self.hold_timeout_s
            while not hold.released.is_set() and time.monotonic() < deadline:
                if await request.is_disconnected():
                    return False
                await asyncio.sleep(_HOLD_POLL_S)
            return not await request.is_disconnected()
        finally:
            with self._lock:
                hold.waiting -= 1

    # -- decisions -----------------------------------------------------------------------------------

    def _steps_for(self, run: str, role: str, key: str) -> tuple[list[JSONDict] | None, str]:
        with self._lock:
            own = self._runs.get(run) if run else None
            scenario = own if own is not None else self._scenario
        whose = f"run {run}'s script" if own is not None else "the default script"
        script = scenario.get(role)
        if script is None:
            return None, f"no script for role {role!r} in {whose} (scripted roles: {sorted(scenario)})"
        steps = script.get(key, script.get("*"))
        if steps is None:
            return None, f"no script for role {role!r} key {key!r} and no '*' fallback in {whose}"
        return steps, ""

    def _next_error(self, run: str, role: str, key: str, step: int, spec: JSONDict) -> JSONDict | None:
        errors: list[JSONDict] = spec.get("errors", [])
        if not errors:
            return None
        with self._lock:
            own = run if run in self._runs else ""  # runs on the default script share its counters
            n = self._errors_served.get((own, role, key, step), 0)
            if n >= len(errors):
                return None
            self._errors_served[(own, role, key, step)] = n + 1
        return errors[n]

    def usage_for(self, body: Mapping[str, Any], output_chars: int, api_key: str = "") -> dict[str, int]:
        """Default usage for a request, reading and writing the simulated prompt cache (of ``api_key``)."""
        with self._lock:
            use = self._cache.use(body, api_key)
        return {
            "input_tokens": use.input_tokens,
            "output_tokens": max(tokens(output_chars), 1),
            "cache_creation_input_tokens": use.cache_creation_input_tokens,
            "cache_read_input_tokens": use.cache_read_input_tokens,
        }


def _matching(
    records: list[RecordedRequest], role: str, key: str | None, run: str | None
) -> list[RecordedRequest]:
    want = None if run is None else run.lower()
    return [
        r
        for r in records
        if r.role == role and (key is None or r.key == key) and (want is None or r.run == want)
    ]


def _build_content(spec: JSONDict) -> tuple[list[JSONDict], str, int]:
    """Content blocks, default stop reason and output size in characters for a step."""
    content: list[JSONDict] = []
    text: str | None = spec.get("text")
    if "json" in spec:
        text = json.dumps(spec["json"], ensure_ascii=False)
    if text is not None:
        content.append({"type": "text", "text": text})
    chars = len(text or "")
    calls = tool_calls(spec)
    for call in calls:
        tool_input = dict(call.get("input") or {})
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or _rand("toolu_"),
                "name": call["name"],
                "input": tool_input,
            }
        )
        chars += len(call["name"]) + len(json.dumps(tool_input, ensure_ascii=False))
    return content, ("tool_use" if calls else "end_turn"), chars


def _error_body(err_type: str, message: str) -> JSONDict:
    return {"type": "error", "error": {"type": err_type, "message": message}}


def _error_response(
    status: int, err_type: str, message: str, request_id: str, extra_headers: Mapping[str, str] | None = None
) -> JSONResponse:
    headers = {"request-id": request_id, **(extra_headers or {})}
    return JSONResponse(_error_body(err_type, message), status_code=status, headers=headers)


def _scripted_error(err: Mapping[str, Any]) -> tuple[int, str, str, dict[str, str]]:
    """(status, type, message, headers) of an ``errors`` entry or a ``stream_error``."""
    err_type = err.get("type")
    status = int(err.get("status") or ERROR_STATUS.get(str(err_type), 529))
    err_type = str(
        err_type or ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    )
    message = str(err.get("message") or f"scripted {err_type} ({status})")
    headers: dict[str, str] = {}
    if err.get("retry_after_ms") is not None:
        ms = float(err["retry_after_ms"])
        headers["retry-after-ms"] = f"{ms:g}"
        headers["retry-after"] = str(max(math.ceil(ms / 1000), 0))
    if err.get("should_retry") is not None:
        headers["x-should-retry"] = "true" if err["should_retry"] else "false"
    return status, err_type, message, headers


def _sse(event: str, data: Mapping[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def _chunks(s: str, size: int = 16) -> list[str]:
    return [s[i : i + size] for i in range(0, len(s), size)] or [""]


async def _stream_events(message: JSONDict, error: JSONDict | None) -> AsyncIterator[bytes]:
    """SSE events for ``message``; with ``error``, stop after some content with ``event: error``."""
    usage = dict(message["usage"])
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = {**usage, "output_tokens": 1}
    yield _sse("message_start", {"type": "message_start", "message": start})
    yield _sse("ping", {"type": "ping"})
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            first: JSONDict = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": c} for c in _chunks(block["text"])]
        else:
            first = {**block, "input": {}}
            raw = json.dumps(block["input"], ensure_ascii=False)
            deltas = [{"type": "input_json_delta", "partial_json": c} for c in _chunks(raw)]
        yield _sse(
            "content_block_start", {"type": "content_block_start", "index": index, "content_block": first}
        )
        for delta in deltas:
            yield _sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
            if error is not None:
                break
            await asyncio.sleep(0)
        if error is not None:
            break
        yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})
    if error is not None:
        yield _sse("error", error)
        return
    final: JSONDict = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    yield _sse("message_delta", {"type": "message_delta", "delta": final, "usage": usage})
    yield _sse("message_stop", {"type": "message_stop"})


# ---------------------------------------------------------------------------------------------------
# The ASGI app


def create_app(fake: FakeLLM) -> FastAPI:
    """A FastAPI app serving ``fake`` as the Anthropic Messages API (plus the control routes)."""
    app = FastAPI(title="Otto scripted Anthropic Messages API", openapi_url=None, docs_url=None)

    @app.post("/v1/messages", response_model=None)
    async def messages(request: Request) -> Response:
        request_id = _rand("req_")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _SECRET_HEADERS}
        raw = await request.body()
        try:
            parsed: Any = json.loads(raw)
        except ValueError:
            parsed = None
        body: JSONDict | None = parsed if isinstance(parsed, dict) else None
        role, key, step = identify(body) if body is not None else ("unknown", "*", 0)
        run = run_of(body) if body is not None else ""
        stream = bool(body and body.get("stream"))
        rec = RecordedRequest(
            role=role, key=key, step=step, body=body, headers=headers, stream=stream, run=run
        )
        fake._receive(rec)

        def fail(
            status: int, err_type: str, message: str, extra: Mapping[str, str] | None = None
        ) -> Response:
            rec.status, rec.error_type = status, err_type
            fake._record(rec)
            return _error_response(status, err_type, message, request_id, extra)

        # -- authentication and validation, as the real API does it
        presented, problem = _check_request(fake, request, body, ("model", "max_tokens", "messages"))
        if problem is not None:
            return fail(*problem)
        assert body is not None
        if not isinstance(body["max_tokens"], int) or body["max_tokens"] < 1:
            return fail(400, "invalid_request_error", "max_tokens: must be a positive integer")
        n_prompt = prompt_tokens(body)
        if fake.context_window is not None and n_prompt > fake.context_window:
            too_long = f"prompt is too long: {n_prompt} tokens > {fake.context_window} maximum"
            return fail(400, "invalid_request_error", too_long)

        if fake._outage is not None:  # the API is down: nothing of the script is used
            status = fake._outage
            err_type = ERROR_TYPES.get(status, "api_error")
            return fail(status, err_type, "Overloaded" if status == 529 else f"scripted outage ({status})")

        # -- the script
        steps, why = fake._steps_for(run, role, key)
        where = f"role={role} key={key} step={step}" + (f" run={run}" if run else "")
        if steps is None:
            return fail(400, "invalid_request_error", f"fake_llm: {why} ({where})")
        if step >= len(steps):
            return fail(
                400,
                "invalid_request_error",
                f"fake_llm: script exhausted: no step {step} for {where} (script has {len(steps)} steps)",
            )
        spec = steps[step]

        err = fake._next_error(run, role, key, step, spec)
        mid_stream: JSONDict | None = None
        if err is not None:
            if err.get("hold") and not await fake._wait_at(err["hold"], rec, request):
                return fail(499, "client_closed", "the client went away before the answer")
            if err.get("malformed"):
                return _malformed(rec, fake, request_id, err["malformed"])
            status, err_type, message, extra = _scripted_error(err)
            if not (err.get("mid_stream") and stream):
                return fail(status, err_type, f"{message} ({where})", extra)
            mid_stream = _error_body(err_type, f"{message} ({where})")
        elif spec.get("stream_error") is not None:
            status, err_type, message, extra = _scripted_error(spec["stream_error"])
            if not stream:
                return fail(status, err_type, f"{message} ({where})", extra)
            mid_stream = _error_body(err_type, f"{message} ({where})")

        if spec.get("hold") and not await fake._wait_at(spec["hold"], rec, request):
            # e.g. the client's process was killed, or it timed out, while the answer was held
            return fail(499, "client_closed", "the client went away before the answer")
        if spec.get("malformed") and mid_stream is None:
            return _malformed(rec, fake, request_id, spec["malformed"])

        content, stop_reason, out_chars = _build_content(spec)
        # the model stops where its output budget ends: max_tokens, or what is left of the window
        limit, limit_reason = body["max_tokens"], "max_tokens"
        if fake.context_window is not None and fake.context_window - n_prompt < limit:
            limit, limit_reason = max(fake.context_window - n_prompt, 1), "model_context_window_exceeded"
        if tokens(out_chars) > limit:
            content, out_chars = _truncate(content, limit * 4), limit * 4
            stop_reason = limit_reason
        usage = {**fake.usage_for(body, out_chars, presented), **spec.get("usage", {})}
        message_obj: JSONDict = {
            "id": _rand("msg_"),
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": spec.get("stop_reason", stop_reason),
            "stop_sequence": None,
            "usage": usage,
        }
        rec.status = 200
        rec.error_type = mid_stream["error"]["type"] if mid_stream else None
        rec.usage = usage
        fake._record(rec)
        if stream:
            return StreamingResponse(
                _stream_events(message_obj, mid_stream),
                media_type="text/event-stream",
                headers={"request-id": request_id, "cache-control": "no-cache"},
            )
        return JSONResponse(message_obj, headers={"request-id": request_id})

    @app.post("/v1/messages/count_tokens", response_model=None)
    async def count_tokens(request: Request) -> Response:
        """The prompt's size as ``usage`` would count it (cached or not), without answering it."""
        request_id = _rand("req_")
        try:
            parsed: Any = json.loads(await request.body())
        except ValueError:
            parsed = None
        body: JSONDict | None = parsed if isinstance(parsed, dict) else None
        _key, problem = _check_request(fake, request, body, ("model", "messages"))
        if problem is not None:
            return _error_response(*problem, request_id)
        assert body is not None
        return JSONResponse({"input_tokens": max(prompt_tokens(body), 1)}, headers={"request-id": request_id})

    @app.put("/_scenario", response_model=None)
    async def put_scenario(request: Request, run: str | None = None) -> Response:
        """The default script, or with ``?run=owner/name%23N`` that run's own."""
        try:
            scenario = await request.json()
            fake.load(scenario, run=run)
        except (ScenarioError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"ok": True, "roles": sorted(load_scenario(scenario))})

    @app.put("/_outage/{status}", response_model=None)
    async def start_outage(status: int) -> Response:
        fake.outage(status)
        return Response(status_code=204)

    @app.delete("/_outage", response_model=None)
    async def stop_outage() -> Response:
        fake.end_outage()
        return Response(status_code=204)

    @app.post("/_holds/{name}/release", response_model=None)
    async def release_hold(name: str) -> Response:
        fake.release(name)
        return JSONResponse({"ok": True})

    @app.get("/_requests", response_model=None)
    async def get_requests() -> Response:
        return JSONResponse([r.to_dict() for r in fake.requests])

    @app.delete("/_requests", response_model=None)
    async def delete_requests() -> Response:
        fake.clear_requests()
        return JSONResponse({"ok": True})

    return app


def _check_request(
    fake: FakeLLM, request: Request, body: JSONDict | None, required: tuple[str, ...]
) -> tuple[str, tuple[int, str, str] | None]:
    """(the API key presented, the (status, type, message) of the first problem or None)."""
    auth = request.headers.get("authorization", "")
    presented = auth[7:].strip() if auth.lower().startswith("bearer ") else request.headers.get("x-api-key")
    if not presented:
        return "", (401, "authentication_error", "missing API key (Authorization: Bearer or x-api-key)")
    if fake.api_key is not None and not secrets.compare_digest(presented, fake.api_key):
        return presented, (401, "authentication_error", "invalid x-api-key")
    if not request.headers.get("anthropic-version"):
        return presented, (400, "invalid_request_error", "anthropic-version: header is required")
    if body is None:
        return presented, (400, "invalid_request_error", "request body must be a JSON object")
    missing = [f for f in required if f not in body]
    if missing:
        return presented, (400, "invalid_request_error", f"{', '.join(missing)}: Field required")
    if not isinstance(body["messages"], list) or not body["messages"]:
        return presented, (400, "invalid_request_error", "messages: must be a non-empty list")
    n = breakpoint_count(body)
    if n > MAX_BREAKPOINTS:
        return presented, (
            400,
            "invalid_request_error",
            f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. Found {n}.",
        )
    return presented, None


def _truncate(content: list[JSONDict], budget_chars: int) -> list[JSONDict]:
    """The content a model cut off after ``budget_chars`` of output writes: text is cut where the budget
    ends; a tool call cut in the middle keeps only the input fields it finished (possibly none)."""
    out: list[JSONDict] = []
    left = budget_chars
    for block in content:
        if block["type"] == "text":
            text: str = block["text"]
            if len(text) > left:
                if left > 0:
                    out.append({"type": "text", "text": text[:left]})
                return out
            out.append(block)
            left -= len(text)
            continue
        tool_input: JSONDict = block["input"]
        size = len(block["name"]) + len(json.dumps(tool_input, ensure_ascii=False))
        if size <= left:
            out.append(block)
            left -= size
            continue
        partial: JSONDict = {}
        used = len(block["name"]) + 2
        for k, v in tool_input.items():
            used += len(json.dumps({k: v}, ensure_ascii=False))
            if used > left:
                break
            partial[k] = v
        out.append({**block, "input": partial})
        return out
    return out


def _malformed(rec: RecordedRequest, fake: FakeLLM, request_id: str, kind: Any) -> Response:
    """HTTP 200 with a truncated JSON body (``malformed: true``) or an HTML page (``malformed: html``)."""
    rec.status, rec.error_type = 200, "malformed"
    fake._record(rec)
    if kind == "html":
        page = "<html><body><h1>502 Bad Gateway</h1></body></html>"
        return Response(page, media_type="text/html", headers={"request-id": request_id})
    body = '{"id": "msg_truncated", "type": "message", "content": [{"type": "text", "text": "unterminat'
    if rec.stream:
        sse = f"event: message_start\ndata: {body}\n\n"
        return Response(sse, media_type="text/event-stream", headers={"request-id": request_id})
    return Response(body, media_type="application/json", headers={"request-id": request_id})


def main(argv: list[str] | None = None) -> None:
    """``python -m app.dev.fake_llm --scenario FILE --port P``: serve a scenario with uvicorn."""
    import uvicorn

    parser = argparse.ArgumentParser(
        prog="python -m app.dev.fake_llm", description="Scripted Anthropic Messages API server"
    )
    parser.add_argument("--scenario", type=Path, help="YAML or JSON scenario file")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--api-key", default=None, help="require this API key (default: accept any)")
    args = parser.parse_args(argv)
    fake = FakeLLM(args.scenario, api_key=args.api_key)
    uvicorn.run(create_app(fake), host=args.host, port=args.port, log_level="info")
