"""The scripted Anthropic Messages API server, exercised through the real ``anthropic`` SDK."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from anthropic import AsyncAnthropic

from app.dev.fake_llm import FakeLLM, ScenarioError, create_app, identify, load_scenario, run_of
from app.llm import run_ref, system_blocks
from app.serve_thread import RunningServer, serve_in_thread
from tests.e2e import eventually

KEY = "sk-test-fake-llm"
MODEL = "claude-sonnet-4-6"  # claude-sonnet-4-5 makes SDK 2.10 warn: deprecated


@pytest.fixture(scope="module")
def fake() -> FakeLLM:
    return FakeLLM(api_key=KEY)


@pytest.fixture(scope="module")
def server(fake: FakeLLM) -> Iterator[RunningServer]:
    running = serve_in_thread(create_app(fake), host="127.0.0.1", port=0, name="fake-llm")
    yield running
    running.stop()


@pytest.fixture
async def client(server: RunningServer, fake: FakeLLM) -> AsyncIterator[AsyncAnthropic]:
    fake.load(None)
    async with AsyncAnthropic(api_key=KEY, base_url=server.url, max_retries=2) as c:
        yield c


def system(role: str, task: str | None = None) -> str:
    return f"You are Otto.\notto-role: {role}" + (f"\notto-task: {task}" if task else "")


async def test_text_answer_and_record(client: AsyncAnthropic, fake: FakeLLM) -> None:
    fake.load({"classify": [{"text": '{"actionable": true}'}]})
    msg = await client.messages.create(
        model=MODEL,
        max_tokens=100,
        system=system("classify"),
        messages=[{"role": "user", "content": "Issue #1: add a greet command"}],
    )
    assert msg.type == "message"
    assert msg.role == "assistant"
    assert msg.model == MODEL
    assert msg.id.startswith("msg_")
    assert [b.type for b in msg.content] == ["text"]
    assert msg.content[0].type == "text"
    assert json.loads(msg.content[0].text) == {"actionable": True}
    assert msg.stop_reason == "end_turn"
    [rec] = fake.requests_for("classify")
    assert (rec.role, rec.key, rec.step, rec.status) == ("classify", "*", 0, 200)
    assert rec.body is not None
    assert rec.body["max_tokens"] == 100
    assert "authorization" not in rec.headers
    assert "x-api-key" not in rec.headers
    assert rec.headers["anthropic-version"]


async def test_json_and_bare_string_steps(client: AsyncAnthropic, fake: FakeLLM) -> None:
    fake.load({"plan": ["not json", {"json": {"tasks": [{"id": "t1"}]}}]})
    msgs: list[Any] = [{"role": "user", "content": "plan it"}]
    first = await client.messages.create(model=MODEL, max_tokens=50, system=system("plan"), messages=msgs)
    assert first.content[0].type == "text"
    assert first.content[0].text == "not json"
    msgs += [{"role": "assistant", "content": first.content}, {"role": "user", "content": "JSON please"}]
    second = await client.messages.create(model=MODEL, max_tokens=50, system=system("plan"), messages=msgs)
    assert second.content[0].type == "text"
    assert json.loads(second.content[0].text) == {"tasks": [{"id": "t1"}]}
    assert [r.step for r in fake.requests_for("plan")] == [0, 1]


async def test_tool_use_then_tool_result(client: AsyncAnthropic, fake: FakeLLM) -> None:
    fake.load(
        {
            "agent": {
                "t1": [
                    {
                        "text": "Creating the file.",
                        "tool_use": {"name": "str_replace_based_edit_tool", "input": {"command": "create"}},
                        "tool_uses": [{"name": "run_command", "input": {"command": "pytest -q"}}],
                    },
                    {"text": "Added greet.py and its test."},
                ]
            }
        }
    )
    tools: list[Any] = [
        {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"},
        {
            "name": "run_command",
            "description": "Run a shell command",
            "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
        },
    ]
    messages: list[Any] = [{"role": "user", "content": "Implement it."}]
    sys_prompt = system("agent", "t1")
    turn = await client.messages.create(
        model=MODEL, max_tokens=1000, system=sys_prompt, tools=tools, messages=messages
    )
    assert turn.stop_reason == "tool_use"
    assert [b.type for b in turn.content] == ["text", "tool_use", "tool_use"]
    uses = [b for b in turn.content if b.type == "tool_use"]
    assert [u.name for u in uses] == ["str_replace_based_edit_tool", "run_command"]
    assert uses[1].input == {"command": "pytest -q"}
    assert all(u.id.startswith("toolu_") for u in uses)
    assert uses[0].id != uses[1].id

    messages.append({"role": "assistant", "content": turn.content})
    messages.append(
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": uses[0].id, "content": "created"},
                {"type": "tool_result", "tool_use_id": uses[1].id, "content": "1 passed", "is_error": False},
            ],
        }
    )
    final = await client.messages.create(
        model=MODEL, max_tokens=1000, system=sys_prompt, tools=tools, messages=messages
    )
    assert final.stop_reason == "end_turn"
    assert final.content[0].type == "text"
    assert final.content[0].text == "Added greet.py and its test."
    assert [(r.key, r.step) for r in fake.requests_for("agent")] == [("t1", 0), ("t1", 1)]


async def test_concurrent_conversations_route_by_key(client: AsyncAnthropic, fake: FakeLLM) -> None:
    fake.load(
        {
            "agent": {
                "a": [
                    {"tool_use": {"name": "run_command", "input": {"command": "a"}}, "hold": "a0"},
                    "done a",
                ],
                "b": [{"tool_use": {"name": "run_command", "input": {"command": "b"}}}, "done b"],
                "*": ["fallback"],
            }
        }
    )

    async def converse(task: str, key_in_user: bool) -> list[str]:
        # the key may come from the system prompt or from the first user message
        sys_prompt = system("agent") if key_in_user else system("agent", task)
        messages: list[Any] = [
            {"role": "user", "content": f"otto-task: {task}\nGo." if key_in_user else "Go."}
        ]
        seen: list[str] = []
        for _ in range(5):
            msg = await client.messages.create(
                model=MODEL, max_tokens=100, system=sys_prompt, messages=messages
            )
            seen += [str(b.input["command"]) if b.type == "tool_use" else b.text for b in msg.content]  # type: ignore[union-attr]
            if msg.stop_reason != "tool_use":
                return seen
            messages.append({"role": "assistant", "content": msg.content})
            results = [
                {"type": "tool_result", "tool_use_id": b.id, "content": "ok"}
                for b in msg.content
                if b.type == "tool_use"
            ]
            messages.append({"role": "user", "content": results})
        raise AssertionError("conversation did not end")

    async def release_a_once_b_is_done() -> None:
        await fake.held("a0")
        await eventually(lambda: len(fake.requests_for("agent", "b")) == 2)
        fake.release("a0")

    a, b, other, _ = await asyncio.gather(
        converse("a", False), converse("b", True), converse("zzz", False), release_a_once_b_is_done()
    )
    assert a == ["a", "done a"]
    assert b == ["b", "done b"]
    assert other == ["fallback"]
    assert [r.step for r in fake.requests_for("agent", "a")] == [0, 1]
    assert [r.step for r in fake.requests_for("agent", "b")] == [0, 1]
    assert [r.key for r in fake.requests_for("agent") if r.key not in ("a", "b")] == ["zzz"]


async def test_overloaded_is_retried_by_the_sdk(client: AsyncAnthropic, fake: FakeLLM) -> None:
    fake.load({"classify": [{"text": "ok", "errors": [{"status": 529, "retry_after_ms": 1}]}]})
    msg = await client.messages.create(
        model=MODEL, max_tokens=10, system=system("classify"), messages=[{"role": "user", "content": "hi"}]
    )
    assert msg.content[0].type == "text"
    assert msg.content[0].text == "ok"
    attempts = fake.requests_for("classify")
    assert [(r.status, r.error_type) for r in attempts] == [(529, "overloaded_error"), (200, None)]
    assert attempts[1].headers.get("x-stainless-retry-count") == "1"


async def test_rate_limit_retry_after_ms_is_honoured(client: AsyncAnthropic, fake: FakeLLM) -> None:
    fake.load({"summary": [{"text": "done", "errors": [{"status": 429, "retry_after_ms": 300}]}]})
    started = time.monotonic()
    msg = await client.messages.create(
        model=MODEL, max_tokens=10, system=system("summary"), messages=[{"role": "user", "content": "hi"}]
    )
    elapsed = time.monotonic() - started
    assert msg.content[0].type == "text"
    assert msg.content[0].text == "done"
    assert 0.3 <= elapsed < 2.0  # the header's 300 ms, not the SDK's default backoff
    first, second = fake.requests_for("summary")
    assert first.status == 429
    assert first.error_type == "rate_limit_error"
    assert second.at - first.at >= 0.29


async def test_errors_without_retries_raise(server: RunningServer, fake: FakeLLM) -> None:
    fake.load(
        {
            "pilot": [
                {
                    "text": "finally",
                    "errors": [
                        {"status": 529, "message": "Overloaded"},
                        {"status": 500},
                        {"type": "rate_limit_error", "retry_after_ms": 1},
                    ],
                }
            ]
        }
    )
    kwargs: Any = {"model": MODEL, "max_tokens": 10, "system": system("pilot")}
    kwargs["messages"] = [{"role": "user", "content": "hi"}]
    async with AsyncAnthropic(api_key=KEY, base_url=server.url, max_retries=0) as c:
        with pytest.raises(anthropic.OverloadedError) as overloaded:
            await c.messages.create(**kwargs)
        assert overloaded.value.status_code == 529
        assert isinstance(overloaded.value, anthropic.APIStatusError)
        assert overloaded.value.body == {
            "type": "error",
            "error": {"type": "overloaded_error", "message": "Overloaded (role=pilot key=* step=0)"},
        }
        assert overloaded.value.request_id
        assert overloaded.value.request_id.startswith("req_")
        with pytest.raises(anthropic.InternalServerError) as internal:
            await c.messages.create(**kwargs)
        assert internal.value.status_code == 500
        with pytest.raises(anthropic.RateLimitError) as limited:
            await c.messages.create(**kwargs)
        assert limited.value.response.headers["retry-after-ms"] == "1"
        assert limited.value.response.headers["retry-after"] == "1"
        msg = await c.messages.create(**kwargs)  # the errors are used up: the normal answer
        assert msg.content[0].type == "text"
        assert msg.content[0].text == "finally"
    assert [r.status for r in fake.requests_for("pilot")] == [529, 500, 429, 200]


async def test_malformed_body(server: RunningServer, client: AsyncAnthropic, fake: FakeLLM) -> None:
    fake.load({"classify": [{"text": "x", "malformed": True}], "plan": [{"text": "x", "malformed": "html"}]})
    kwargs: Any = {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    # What SDK 2.10 really does with a truncated application/json body: a bare JSONDecodeError (a
    # ValueError), not an anthropic.APIError, and no retry.
    with pytest.raises(json.JSONDecodeError):
        await client.messages.create(system=system("classify"), **kwargs)
    with pytest.raises(json.JSONDecodeError):
        async with client.messages.stream(system=system("classify"), **kwargs) as s:
            await s.get_final_message()
    assert [(r.status, r.error_type) for r in fake.requests_for("classify")] == [(200, "malformed")] * 2

    # A 200 HTML page (a proxy): the non-strict SDK returns the text instead of a Message ...
    page = await client.messages.create(system=system("plan"), **kwargs)
    assert isinstance(page, str)
    assert "Bad Gateway" in page
    # ... and the strict one raises APIResponseValidationError
    async with AsyncAnthropic(
        api_key=KEY, base_url=server.url, max_retries=0, _strict_response_validation=True
    ) as strict:
        with pytest.raises(anthropic.APIResponseValidationError) as info:
            await strict.messages.create(system=system("plan"), **kwargs)
    assert isinstance(info.value, anthropic.APIError)
    assert info.value.response.status_code == 200


async def test_malformed_once_in_errors_then_answer(client: AsyncAnthropic, fake: FakeLLM) -> None:
    fake.load({"classify": [{"text": "fine", "errors": [{"malformed": True}]}]})
    kwargs: Any = {"model": MODEL, "max_tokens": 10, "system": system("classify")}
    kwargs["messages"] = [{"role": "user", "content": "hi"}]
    with pytest.raises(ValueError):  # noqa: PT011 - the SDK's own error for an unparsable body
        await client.messages.create(**kwargs)
    msg = await client.messages.create(**kwargs)
    assert msg.content[0].type == "text"
    assert msg.content[0].text == "fine"


async def test_step_past_script_is_a_clear_400(client: AsyncAnthropic, fake: FakeLLM) -> None:
    fake.load({"agent": {"t1": ["only one step"]}})
    messages: list[Any] = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": "only one step"},
        {"role": "user", "content": "and?"},
    ]
    with pytest.raises(anthropic.BadRequestError) as info:
        await client.messages.create(
            model=MODEL, max_tokens=10, system=system("agent", "t1"), messages=messages
        )
    assert info.value.status_code == 400
    assert "no step 1 for role=agent key=t1" in info.value.message
    assert len(fake.requests_for("agent")) == 1  # a 400 is not retried

    with pytest.raises(anthropic.BadRequestError, match="no script for role 'unknown'"):
        await client.messages.create(
            model=MODEL, max_tokens=10, system="no role here", messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(anthropic.BadRequestError, match="key 'other'"):
        await client.messages.create(
            model=MODEL,
            max_tokens=10,
            system=system("agent", "other"),
            messages=[{"role": "user", "content": "x"}],
        )


async def test_auth_header_styles(server: RunningServer, fake: FakeLLM) -> None:
    fake.load({"classify": ["ok"]})
    kwargs: Any = {"model": MODEL, "max_tokens": 10, "system": system("classify")}
    kwargs["messages"] = [{"role": "user", "content": "hi"}]
    # SDK 2.x: Authorization: Bearer
    async with AsyncAnthropic(api_key=KEY, base_url=server.url, max_retries=0) as c:
        assert (await c.messages.create(**kwargs)).content[0].type == "text"
    # older SDKs: x-api-key (Authorization explicitly omitted)
    async with AsyncAnthropic(
        api_key=None,
        base_url=server.url,
        max_retries=0,
        default_headers={"x-api-key": KEY, "Authorization": anthropic.omit},  # type: ignore[dict-item]
    ) as c:
        assert (await c.messages.create(**kwargs)).content[0].type == "text"
    auth_styles = [r.headers for r in fake.requests_for("classify")]
    assert all("authorization" not in h and "x-api-key" not in h for h in auth_styles)
    # a wrong key
    async with AsyncAnthropic(api_key="sk-wrong", base_url=server.url, max_retries=0) as c:
        with pytest.raises(anthropic.AuthenticationError) as info:
            await c.messages.create(**kwargs)
    assert info.value.status_code == 401
    assert info.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "invalid x-api-key"},
    }
    assert [r.status for r in fake.requests_for("classify")] == [200, 200, 401]


async def test_usage_defaults_and_overrides(client: AsyncAnthropic, fake: FakeLLM) -> None:
    long_text = "word " * 400
    fake.load({"summary": [{"text": long_text}], "plan": [{"text": "x", "usage": {"output_tokens": 77}}]})
    msg = await client.messages.create(
        model=MODEL,
        max_tokens=1000,
        system=system("summary"),
        messages=[{"role": "user", "content": "x" * 4000}],
    )
    assert 1000 <= msg.usage.input_tokens <= 1100
    assert msg.usage.output_tokens == len(long_text) // 4
    assert msg.usage.cache_creation_input_tokens == 0
    assert msg.usage.cache_read_input_tokens == 0
    msg = await client.messages.create(
        model=MODEL, max_tokens=10, system=system("plan"), messages=[{"role": "user", "content": "y"}]
    )
    assert msg.usage.output_tokens == 77
    assert msg.usage.input_tokens >= 1


async def test_prompt_cache_simulation(client: AsyncAnthropic, fake: FakeLLM) -> None:
    fake.load({"agent": {"*": ["one", "two", "three"]}})
    big_system: Any = [
        {"type": "text", "text": system("agent", "c1")},
        {"type": "text", "text": "Rules. " * 800, "cache_control": {"type": "ephemeral"}},
    ]

    async def ask(messages: list[Any]) -> anthropic.types.Usage:
        msg = await client.messages.create(model=MODEL, max_tokens=10, system=big_system, messages=messages)
        return msg.usage

    first = await ask([{"role": "user", "content": "first"}])
    assert first.cache_creation_input_tokens
    assert first.cache_creation_input_tokens >= 1400
    assert first.cache_read_input_tokens == 0
    assert 0 < first.input_tokens < 50  # only the uncached user message

    again = await ask([{"role": "user", "content": "second"}])
    assert again.cache_read_input_tokens == first.cache_creation_input_tokens
    assert again.cache_creation_input_tokens == 0

    # moving the breakpoint to the latest message: the system prefix is read, the new part created
    turn: list[Any] = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "one"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "more " * 100, "cache_control": {"type": "ephemeral"}}],
        },
    ]
    grown = await ask(turn)
    assert grown.cache_read_input_tokens == first.cache_creation_input_tokens
    assert grown.cache_creation_input_tokens
    assert grown.cache_creation_input_tokens >= 100

    fake.reset()  # forgets the cache
    assert (await ask([{"role": "user", "content": "first"}])).cache_read_input_tokens == 0


async def test_streaming_text_and_tool_use(client: AsyncAnthropic, fake: FakeLLM) -> None:
    fake.load(
        {
            "pilot": [
                {
                    "text": "Let me run the tests, they are a bit slow.",
                    "tool_use": {"name": "run_command", "input": {"command": "pytest -q", "timeout": 60}},
                },
                {"text": "All green."},
            ]
        }
    )
    messages: list[Any] = [{"role": "user", "content": "go"}]
    async with client.messages.stream(
        model=MODEL, max_tokens=100, system=system("pilot"), messages=messages
    ) as s:
        chunks = [t async for t in s.text_stream]
        msg = await s.get_final_message()
    assert len(chunks) > 1
    assert "".join(chunks) == "Let me run the tests, they are a bit slow."
    assert msg.stop_reason == "tool_use"
    tool = msg.content[1]
    assert tool.type == "tool_use"
    assert tool.name == "run_command"
    assert tool.input == {"command": "pytest -q", "timeout": 60}
    assert msg.usage.output_tokens > 1
    assert msg.usage.input_tokens > 0

    messages += [
        {"role": "assistant", "content": msg.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool.id, "content": "ok"}]},
    ]
    async with client.messages.stream(
        model=MODEL, max_tokens=100, system=system("pilot"), messages=messages
    ) as s:
        text = await s.get_final_text()
    assert text == "All green."
    assert [(r.step, r.stream) for r in fake.requests_for("pilot")] == [(0, True), (1, True)]


async def test_stream_error_raises_without_retry(client: AsyncAnthropic, fake: FakeLLM) -> None:
    fake.load(
        {
            "summary": [
                {
                    "text": "This summary will be cut off somewhere in the middle.",
                    "stream_error": {"type": "overloaded_error", "message": "Overloaded"},
                }
            ],
            "plan": [{"text": "second try works", "errors": [{"mid_stream": True, "type": "api_error"}]}],
        }
    )
    received: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as info:  # noqa: PT012 - the error comes mid-stream
        async with client.messages.stream(
            model=MODEL, max_tokens=100, system=system("summary"), messages=[{"role": "user", "content": "x"}]
        ) as s:
            async for t in s.text_stream:
                received.append(t)
    assert info.value.status_code == 200
    assert info.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded (role=summary key=* step=0)"},
    }
    assert received
    assert "".join(received) != "This summary will be cut off somewhere in the middle."
    assert [(r.status, r.error_type) for r in fake.requests_for("summary")] == [(200, "overloaded_error")]

    # the same step without streaming: the matching HTTP error (retried by the SDK, then raised)
    with pytest.raises(anthropic.OverloadedError):
        await client.with_options(max_retries=0).messages.create(
            model=MODEL, max_tokens=10, system=system("summary"), messages=[{"role": "user", "content": "x"}]
        )

    # a one-off mid-stream error from `errors`, then the normal answer
    kwargs: Any = {"model": MODEL, "max_tokens": 100, "system": system("plan")}
    kwargs["messages"] = [{"role": "user", "content": "x"}]
    with pytest.raises(anthropic.APIStatusError, match="api_error"):
        async with client.messages.stream(**kwargs) as s:
            await s.get_final_message()
    async with client.messages.stream(**kwargs) as s:
        assert await s.get_final_text() == "second try works"


def ask(c: AsyncAnthropic, role: str = "classify", run: str | None = None) -> Any:
    """A coroutine asking ``role`` once (``run``: an ``otto-run:`` line in the system prompt)."""
    sys_prompt = system(role) + (f"\notto-run: {run}" if run else "")
    return c.messages.create(
        model=MODEL, max_tokens=10, system=sys_prompt, messages=[{"role": "user", "content": "x"}]
    )


def text(msg: Any) -> str:
    return "".join(b.text for b in msg.content if b.type == "text")


async def test_a_held_answer_waits_for_its_release(client: AsyncAnthropic, fake: FakeLLM) -> None:
    fake.load({"classify": [{"text": "held", "hold": "h"}]})
    call = asyncio.create_task(ask(client))
    arrived = await fake.held("h")  # the model is "in the middle of" the step
    assert (arrived.role, arrived.step, arrived.status) == ("classify", 0, 0)
    assert fake.holding("h") == 1
    assert fake.requests_for("classify") == []
    assert not call.done()
    fake.release("h")
    assert text(await call) == "held"
    assert fake.holding("h") == 0
    assert [r.status for r in fake.requests_for("classify")] == [200]
    # a latch: once released, later requests reaching the hold are answered at once
    assert text(await ask(client)) == "held"


async def test_a_held_error_then_the_answer(client: AsyncAnthropic, fake: FakeLLM) -> None:
    fake.load({"classify": [{"text": "ok", "errors": [{"status": 529, "retry_after_ms": 1, "hold": "e"}]}]})
    call = asyncio.create_task(ask(client))
    await fake.held("e")
    fake.release("e")
    assert text(await call) == "ok"  # the SDK retried the 529
    assert [r.status for r in fake.requests_for("classify")] == [529, 200]


async def test_a_hold_nobody_releases_answers_after_its_time() -> None:
    own = FakeLLM(api_key=KEY, hold_timeout_s=0.2)
    own.load({"classify": [{"text": "at last", "hold": "forgotten"}]})
    running = serve_in_thread(create_app(own), host="127.0.0.1", port=0, name="fake-llm-timeout")
    try:
        async with AsyncAnthropic(api_key=KEY, base_url=running.url, max_retries=0) as c:
            assert text(await ask(c)) == "at last"
    finally:
        running.stop()


async def test_stopping_releases_every_hold() -> None:
    own = FakeLLM(api_key=KEY)
    own.load({"classify": [{"text": "freed", "hold": "a"}, {"text": "never held", "hold": "b"}]})
    running = serve_in_thread(create_app(own), host="127.0.0.1", port=0, name="fake-llm-stop")
    try:
        async with AsyncAnthropic(api_key=KEY, base_url=running.url, max_retries=0) as c:
            call = asyncio.create_task(ask(c))
            await own.held("a")
            own.release_all()
            assert text(await call) == "freed"
            # a hold reached after release_all doesn't wait either
            msg = await c.messages.create(
                model=MODEL,
                max_tokens=10,
                system=system("classify"),
                messages=[
                    {"role": "user", "content": "x"},
                    {"role": "assistant", "content": "freed"},
                    {"role": "user", "content": "y"},
                ],
            )
            assert text(msg) == "never held"
    finally:
        running.stop()


async def test_a_held_answer_is_received_at_once_and_not_served_to_a_client_gone_meanwhile(
    server: RunningServer, fake: FakeLLM
) -> None:
    fake.load({"classify": [{"text": "slow", "hold": "slow"}]})
    async with AsyncAnthropic(api_key=KEY, base_url=server.url, max_retries=0) as gone:
        call = asyncio.create_task(ask(gone))
        await fake.held("slow")  # there while its answer is held
        [arrived] = fake.received_for("classify")
        assert (arrived.step, arrived.status) == (0, 0)
        assert fake.requests_for("classify") == []
        call.cancel()  # the client goes away (its connection is closed)
        with pytest.raises(asyncio.CancelledError):
            await call
    # the hold ends when its client is gone, unreleased
    await eventually(lambda: fake.requests_for("classify"))
    [rec] = fake.requests_for("classify")
    assert (rec.status, rec.error_type, rec.usage) == (499, "client_closed", None)
    assert fake.served() == []
    assert fake.holding("slow") == 0

    fake.release("slow")
    async with AsyncAnthropic(api_key=KEY, base_url=server.url, max_retries=0) as there:
        msg = await there.messages.create(
            model=MODEL,
            max_tokens=10,
            system=system("classify"),
            messages=[{"role": "user", "content": "x"}],
        )
    [served] = fake.served()
    assert served.usage is not None
    assert (served.usage["input_tokens"], served.usage["output_tokens"]) == (
        msg.usage.input_tokens,
        msg.usage.output_tokens,
    )


# --- scripts per run ------------------------------------------------------------------------------------


async def test_two_runs_with_the_same_task_id_each_get_their_own_script(
    client: AsyncAnthropic, fake: FakeLLM
) -> None:
    fake.load({"plan": ["default plan"], "agent": {"t1": ["default t1"]}})
    fake.load({"plan": ["plan of 7"], "agent": {"t1": ["t1 of 7"]}}, run="octo/one#7")
    fake.load({"agent": {"t1": ["t1 of two#7"]}}, run="Octo/Two#7")

    async def agent(run: str | None) -> str:
        sys_prompt = system("agent", "t1") + (f"\notto-run: {run}" if run else "")
        msg = await client.messages.create(
            model=MODEL, max_tokens=10, system=sys_prompt, messages=[{"role": "user", "content": "x"}]
        )
        return text(msg)

    assert await agent("octo/one#7") == "t1 of 7"
    assert await agent("OCTO/two#7") == "t1 of two#7"  # GitHub's names ignore case
    assert await agent("octo/one#8") == "default t1"  # a run without a script of its own
    assert await agent(None) == "default t1"
    assert text(await ask(client, "plan", "octo/one#7")) == "plan of 7"
    # a run's own script is all it gets: no falling back to the default script role by role
    with pytest.raises(anthropic.BadRequestError, match="no script for role 'plan' in run octo/two#7"):
        await ask(client, "plan", "octo/two#7")
    assert [r.run for r in fake.requests_for("agent")] == ["octo/one#7", "octo/two#7", "octo/one#8", ""]
    [mine] = fake.requests_for("agent", "t1", run="Octo/One#7")
    assert (mine.key, mine.step, mine.status) == ("t1", 0, 200)
    assert [r.run for r in fake.received_for("agent", run="octo/two#7")] == ["octo/two#7"]


async def test_error_counters_are_per_run(client: AsyncAnthropic, fake: FakeLLM) -> None:
    flaky = {"classify": [{"text": "ok", "errors": [{"status": 529, "retry_after_ms": 1}]}]}
    fake.load(flaky, run="o/a#1")
    fake.load(flaky, run="o/b#1")
    assert text(await ask(client, run="o/a#1")) == "ok"
    assert text(await ask(client, run="o/b#1")) == "ok"  # its own error, not spent by o/a#1
    assert [r.status for r in fake.requests_for("classify", run="o/b#1")] == [529, 200]
    fake.load(flaky, run="o/a#1")  # loading a run's script again resets its counters
    assert text(await ask(client, run="o/a#1")) == "ok"
    assert [r.status for r in fake.requests_for("classify", run="o/a#1")] == [529, 200, 529, 200]


async def test_loading_the_default_script_forgets_every_runs_script(
    client: AsyncAnthropic, fake: FakeLLM
) -> None:
    fake.load({"classify": ["run's own"]}, run="o/a#1")
    fake.load({"classify": ["default"]})
    assert text(await ask(client, run="o/a#1")) == "default"


def test_a_run_must_be_named_owner_name_number(fake: FakeLLM) -> None:
    for bad in ["o/a", "a#1", "o/a#x", "o/a#1 extra", "o/a/b#1"]:
        with pytest.raises(ScenarioError, match="owner/name#N"):
            fake.load({"classify": ["x"]}, run=bad)


def test_otto_names_its_run_in_every_system_prompt() -> None:
    """The marker Otto sends (``app.llm.system_blocks``) is the one the server reads."""
    blocks = system_blocks("agent", "You are the agent.", "t1", run_ref("Octo/Repo-1.x", 42))
    body = {"system": blocks, "messages": [{"role": "user", "content": "Go."}]}
    assert identify(body) == ("agent", "t1", 0)
    assert run_of(body) == "octo/repo-1.x#42"
    assert run_of({"system": system_blocks("plan", "Plan."), "messages": []}) == ""


def _http(url: str, method: str = "GET", body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})  # noqa: S310
    with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310
        return json.loads(resp.read())


async def test_control_routes(client: AsyncAnthropic, server: RunningServer, fake: FakeLLM) -> None:
    result = await asyncio.to_thread(_http, server.url + "/_scenario", "PUT", {"classify": ["via http"]})
    assert result == {"ok": True, "roles": ["classify"]}
    msg = await client.messages.create(
        model=MODEL, max_tokens=10, system=system("classify"), messages=[{"role": "user", "content": "x"}]
    )
    assert msg.content[0].type == "text"
    assert msg.content[0].text == "via http"
    records = await asyncio.to_thread(_http, server.url + "/_requests")
    assert [(r["role"], r["step"], r["status"]) for r in records] == [("classify", 0, 200)]
    assert records[0]["body"]["model"] == MODEL
    await asyncio.to_thread(_http, server.url + "/_requests", "DELETE")
    assert fake.requests == []

    # a run's own script, and a hold released from outside the test's process
    url = server.url + "/_scenario?run=" + urllib.parse.quote("o/r#3")
    result = await asyncio.to_thread(_http, url, "PUT", {"classify": [{"text": "held", "hold": "ext"}]})
    assert result == {"ok": True, "roles": ["classify"]}
    call = asyncio.create_task(ask(client, run="o/r#3"))
    await fake.held("ext")
    await asyncio.to_thread(_http, server.url + "/_holds/ext/release", "POST", {})
    assert text(await call) == "held"
    bad = server.url + "/_scenario?run=" + urllib.parse.quote("not a run")
    with pytest.raises(urllib.error.HTTPError, match="400"):
        await asyncio.to_thread(_http, bad, "PUT", {"classify": ["x"]})


async def test_missing_version_header_and_fields(client: AsyncAnthropic, fake: FakeLLM) -> None:
    fake.load({"classify": ["ok"]})
    with pytest.raises(anthropic.BadRequestError, match="anthropic-version"):
        await client.messages.create(
            model=MODEL,
            max_tokens=10,
            system=system("classify"),
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"anthropic-version": anthropic.omit},
        )
    with pytest.raises(anthropic.BadRequestError, match="max_tokens"):
        await client.post("/v1/messages", body={"model": MODEL, "messages": []}, cast_to=object)


def test_identify_contract() -> None:
    body: dict[str, Any] = {
        "system": [
            {"type": "text", "text": "x"},
            {"type": "text", "text": "otto-role: plan otto-task: T-1.a"},
        ],
        "messages": [
            {"role": "user", "content": "otto-task: ignored"},
            {"role": "assistant", "content": "a"},
        ],
    }
    assert identify(body) == ("plan", "T-1.a", 1)
    body = {
        "system": "nothing",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "otto-task: u2"}]}],
    }
    assert identify(body) == ("unknown", "u2", 0)
    assert identify({"messages": [{"role": "user", "content": "hi"}]}) == ("unknown", "*", 0)


def test_scenario_files_and_validation(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("classify:\n  - text: hi\nagent:\n  t1:\n    - tool_use: {name: x, input: {a: 1}}\n")
    assert load_scenario(path) == {
        "classify": {"*": [{"text": "hi"}]},
        "agent": {"t1": [{"tool_use": {"name": "x", "input": {"a": 1}}}]},
    }
    (tmp_path / "s.json").write_text(json.dumps({"plan": [{"json": {"a": 1}}]}))
    assert load_scenario(tmp_path / "s.json") == {"plan": {"*": [{"json": {"a": 1}}]}}
    with pytest.raises(ScenarioError, match="unknown fields"):
        load_scenario({"plan": [{"txt": "typo"}]})
    with pytest.raises(ScenarioError, match="name"):
        load_scenario({"plan": [{"tool_use": {"input": {}}}]})
    with pytest.raises(ScenarioError, match="errors"):
        load_scenario({"plan": [{"errors": [{"status": 529, "retry_after": 1}]}]})
    for example in sorted(Path(__file__).parent.parent.glob("app/dev/scenarios/*.y*ml")):
        assert load_scenario(example)


# --- prompt cache, token counting and limits, as the API applies them ---------------------------------------


def _turns(n: int, breakpoints: int = 2) -> list[Any]:
    """A conversation of n tool turns (~2 KB each) with cache breakpoints on the last ``breakpoints`` user
    messages, the way an agent moving its breakpoint forward sends it."""
    messages: list[Any] = [{"role": "user", "content": [{"type": "text", "text": "Do the task."}]}]
    for i in range(n):
        messages.append(
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": f"t{i}", "name": "run", "input": {}}],
            }
        )
        messages.append(
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": f"t{i}", "content": "o" * 2000}],
            }
        )
    users = [m for m in messages if m["role"] == "user"]
    for m in users[-breakpoints:]:
        m["content"][-1]["cache_control"] = {"type": "ephemeral"}
    return messages


async def test_prompt_cache_reads_grow_with_a_moving_breakpoint(
    client: AsyncAnthropic, fake: FakeLLM
) -> None:
    fake.load({"agent": {"*": ["ok"] * 10}})
    reads, writes = [], []
    for n in range(5):
        msg = await client.messages.create(
            model=MODEL, max_tokens=10, system=system("agent", "grow"), messages=_turns(n)
        )
        u = msg.usage
        reads.append(u.cache_read_input_tokens or 0)
        writes.append(u.cache_creation_input_tokens or 0)
        total = await client.messages.count_tokens(
            model=MODEL, system=system("agent", "grow"), messages=_turns(n)
        )
        # count_tokens is the same prompt, however it splits into cached and uncached parts
        assert u.input_tokens + (u.cache_creation_input_tokens or 0) + (u.cache_read_input_tokens or 0) == (
            total.input_tokens
        )
    assert reads[0] == 0
    assert all(b > a for a, b in itertools.pairwise(reads))
    # each step writes only its new turn (~500 tokens), never the whole conversation again
    assert all(450 <= w <= 560 for w in writes[1:]), writes


async def test_prompt_cache_lookback_and_per_key(server: RunningServer, fake: FakeLLM) -> None:
    fake.load({"agent": {"*": ["ok"] * 40}})  # the step is the number of assistant turns
    kwargs: Any = {"model": MODEL, "max_tokens": 10, "system": system("agent", "lb")}
    async with AsyncAnthropic(api_key=KEY, base_url=server.url, max_retries=0) as c:
        await c.messages.create(messages=_turns(2, breakpoints=1), **kwargs)
        # one breakpoint only, 2 turns (4 blocks) further on: found by the lookback
        later = await c.messages.create(messages=_turns(4, breakpoints=1), **kwargs)
        assert later.usage.cache_read_input_tokens
        assert later.usage.cache_read_input_tokens > 1000
        # 25 turns further on (50 blocks): beyond the 20-block lookback, nothing is read
        far = await c.messages.create(messages=_turns(30, breakpoints=1), **kwargs)
        assert far.usage.cache_read_input_tokens == 0
    other_fake = FakeLLM({"agent": {"*": ["ok"] * 3}})  # accepts any key
    other = serve_in_thread(create_app(other_fake), host="127.0.0.1", port=0, name="fake-llm-keys")
    try:
        async with (
            AsyncAnthropic(api_key="sk-org-a", base_url=other.url, max_retries=0) as a,
            AsyncAnthropic(api_key="sk-org-b", base_url=other.url, max_retries=0) as b,
        ):
            first = await a.messages.create(messages=_turns(2), **kwargs)
            assert first.usage.cache_read_input_tokens == 0
            # the same prompt under another API key: another organisation's cache, nothing to read
            assert (await b.messages.create(messages=_turns(2), **kwargs)).usage.cache_read_input_tokens == 0
            again = await a.messages.create(messages=_turns(2), **kwargs)
            assert again.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    finally:
        other.stop()


async def test_breakpoint_limit_and_min_cacheable_length(server: RunningServer, fake: FakeLLM) -> None:
    fake.load({"agent": {"*": ["ok"] * 6}})
    async with AsyncAnthropic(api_key=KEY, base_url=server.url, max_retries=0) as c:
        with pytest.raises(anthropic.BadRequestError, match="A maximum of 4 blocks with cache_control"):
            await c.messages.create(
                model=MODEL, max_tokens=10, system=system("agent", "five"), messages=_turns(5, breakpoints=5)
            )
        with pytest.raises(anthropic.BadRequestError, match="A maximum of 4 blocks"):
            await c.messages.count_tokens(model=MODEL, messages=_turns(5, breakpoints=5))
    strict = FakeLLM({"agent": {"*": ["ok"] * 5}}, min_cache_tokens=1024)
    running = serve_in_thread(create_app(strict), host="127.0.0.1", port=0, name="fake-llm-min")
    try:
        async with AsyncAnthropic(api_key=KEY, base_url=running.url, max_retries=0) as c:
            kwargs: Any = {"model": MODEL, "max_tokens": 10, "system": system("agent", "min")}
            small = await c.messages.create(messages=_turns(1), **kwargs)  # ~500 tokens: not cacheable
            assert small.usage.cache_creation_input_tokens == 0
            assert (await c.messages.create(messages=_turns(1), **kwargs)).usage.cache_read_input_tokens == 0
            big = await c.messages.create(messages=_turns(4), **kwargs)
            assert big.usage.cache_creation_input_tokens
            assert big.usage.cache_creation_input_tokens > 1024
    finally:
        running.stop()


async def test_count_tokens_validates_like_messages(server: RunningServer, client: AsyncAnthropic) -> None:
    counted = await client.messages.count_tokens(
        model=MODEL, system="s" * 400, messages=[{"role": "user", "content": "x" * 4000}]
    )
    assert 1090 <= counted.input_tokens <= 1120
    with pytest.raises(anthropic.BadRequestError, match="messages"):
        await client.messages.count_tokens(model=MODEL, messages=[])
    async with AsyncAnthropic(api_key="sk-wrong", base_url=server.url, max_retries=0) as wrong:
        with pytest.raises(anthropic.AuthenticationError):
            await wrong.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "x"}])


async def test_output_is_cut_at_max_tokens_even_inside_a_tool_call(
    client: AsyncAnthropic, fake: FakeLLM
) -> None:
    big = "line\n" * 400  # 2000 characters: ~500 output tokens
    step = {
        "text": "Writing it.",
        "tool_use": {
            "name": "str_replace_based_edit_tool",
            "input": {"command": "create", "path": "a.py", "file_text": big},
        },
    }
    fake.load({"agent": {"*": [step]}})
    kwargs: Any = {
        "model": MODEL,
        "system": system("agent", "cut"),
        "messages": [{"role": "user", "content": "go"}],
    }
    cut = await client.messages.create(max_tokens=100, **kwargs)
    assert cut.stop_reason == "max_tokens"
    assert cut.usage.output_tokens == 100
    [text, tool] = cut.content
    assert text.type == "text"
    assert text.text == "Writing it."
    assert tool.type == "tool_use"
    assert tool.input == {
        "command": "create",
        "path": "a.py",
    }
    whole = await client.messages.create(max_tokens=1000, **kwargs)
    assert whole.stop_reason == "tool_use"
    assert whole.content[1].type == "tool_use"
    assert whole.content[1].input["file_text"] == big
    fake.load({"agent": {"*": [{"text": "y" * 1000}]}})
    async with client.messages.stream(max_tokens=50, **kwargs) as s:
        final = await s.get_final_message()
    assert final.stop_reason == "max_tokens"
    first = final.content[0]
    assert first.type == "text"
    assert first.text == "y" * 200


async def test_context_window_limits(server: RunningServer) -> None:
    small = FakeLLM({"agent": {"*": [{"text": "z" * 2000}] * 3}}, context_window=1000)
    running = serve_in_thread(create_app(small), host="127.0.0.1", port=0, name="fake-llm-window")
    try:
        async with AsyncAnthropic(api_key=KEY, base_url=running.url, max_retries=2) as c:
            kwargs: Any = {"model": MODEL, "max_tokens": 4000, "system": system("agent", "w")}
            with pytest.raises(
                anthropic.BadRequestError, match=r"prompt is too long: \d+ tokens > 1000 maximum"
            ):
                await c.messages.create(messages=[{"role": "user", "content": "x" * 4400}], **kwargs)
            assert [r.status for r in small.requests] == [400]  # a 400 is not retried
            # the prompt fits, the answer does not: cut where the window ends
            msg = await c.messages.create(messages=[{"role": "user", "content": "x" * 3200}], **kwargs)
            assert msg.stop_reason == "model_context_window_exceeded"
            assert msg.usage.input_tokens + msg.usage.output_tokens <= 1000
    finally:
        running.stop()


async def test_elided_turns_marker_counts_as_steps(client: AsyncAnthropic, fake: FakeLLM) -> None:
    fake.load({"agent": {"*": ["zero", "one", "two", "three"]}})
    messages: list[Any] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "task"},
                {"type": "text", "text": "[otto-elided-turns: 2] two turns were removed"},
            ],
        },
        {"role": "assistant", "content": "kept"},
        {"role": "user", "content": "go on"},
    ]
    msg = await client.messages.create(
        model=MODEL, max_tokens=10, system=system("agent", "el"), messages=messages
    )
    assert msg.content[0].type == "text"
    assert msg.content[0].text == "three"
    assert identify({"messages": messages}) == ("unknown", "*", 3)
    # the marker counts only as the note's own block, never inside other text (the task, the agent's words)
    messages[0]["content"] = [{"type": "text", "text": "task [otto-elided-turns: 2]"}]
    assert identify({"messages": messages}) == ("unknown", "*", 1)
