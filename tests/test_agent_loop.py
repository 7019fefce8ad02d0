"""The agent loop against the scripted Anthropic server (real ``anthropic`` client over HTTP, real tools):
incremental prompt caching, context shrinking, every stop reason, bounded tool output."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from app.agent.loop import Agent, Transcript
from app.agent.tools import CommandTool, EditorTool
from app.dev.fake_llm import FakeLLM, create_app
from app.dev.fake_llm.prompt import breakpoint_count, prompt_tokens
from app.domain.context import CLEARED_PREFIX, ContextPolicy, conversation_problems
from app.domain.usage import price_for
from app.llm import LLM
from app.serve_thread import RunningServer, serve_in_thread
from app.settings import Settings
from tests.sandboxing import make_mounts, make_sandbox

KEY = "sk-test-agent-loop"
MODEL = "claude-sonnet-4-6"


class Model:
    """A scripted model server of its own (so no prompt cache or counters are shared between tests)."""

    def __init__(self, fake: FakeLLM, server: RunningServer) -> None:
        self.fake = fake
        self.server = server
        self.llm = LLM(
            Settings(
                _env_file=None,
                anthropic_api_key=SecretStr(KEY),
                anthropic_base_url=server.url,
                model_max_retries=0,
            )
        )

    def bodies(self, task: str) -> list[dict[str, Any]]:
        return [r.body for r in self.fake.requests_for("agent", task) if r.body is not None]


@pytest.fixture
def model() -> Iterator[Callable[..., Model]]:
    started: list[Model] = []

    def start(scenario: dict[str, Any], **fake_options: Any) -> Model:
        fake = FakeLLM(scenario, api_key=KEY, **fake_options)
        m = Model(fake, serve_in_thread(create_app(fake), host="127.0.0.1", port=0, name="fake-llm-agent"))
        started.append(m)
        return m

    yield start
    for m in started:
        m.server.stop()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    repo = tmp_path / "wt"
    repo.mkdir()
    subprocess.run(
        ["git", "init", "-q", str(repo)], check=True, env={**os.environ, "GIT_CONFIG_GLOBAL": os.devnull}
    )
    return repo


def agent_for(
    m: Model,
    root: Path,
    task: str,
    *,
    context: ContextPolicy | None = None,
    max_steps: int = 80,
    output_limit: int = 16_000,
    max_tokens: int = 8192,
    max_tokens_limit: int = 32_000,
) -> Agent:
    sandbox = make_sandbox(root.parent)
    return Agent(
        m.llm,
        editor=EditorTool(root, output_limit=output_limit, owner=sandbox.owner),
        shell=CommandTool(sandbox, make_mounts(sandbox, root), 30, output_limit),
        system="You are the coding agent. Do the task with the tools.",
        task_id=task,
        model=MODEL,
        max_steps=max_steps,
        transcript=Transcript(root.parent / f"{task}.jsonl", []),
        context=context,
        max_tokens=max_tokens,
        max_tokens_limit=max_tokens_limit,
    )


def records(agent: Agent, kind: str) -> list[dict[str, Any]]:
    assert agent.transcript.path is not None
    lines = agent.transcript.path.read_text().splitlines()
    return [r["payload"] for r in map(json.loads, lines) if r["kind"] == kind]


def command(cmd: str, text: str = "") -> dict[str, Any]:
    step: dict[str, Any] = {"tool_use": {"name": "run_command", "input": {"command": cmd}}}
    if text:
        step["text"] = text
    return step


def prompt_of(usage: dict[str, int]) -> int:
    return usage["input_tokens"] + usage["cache_creation_input_tokens"] + usage["cache_read_input_tokens"]


def assert_valid(bodies: list[dict[str, Any]]) -> None:
    for body in bodies:
        assert conversation_problems(body["messages"]) == []
        assert breakpoint_count(body) <= 4


# --- incremental prompt caching -----------------------------------------------------------------------------


async def test_breakpoint_moves_each_step_and_cache_reads_grow(
    model: Callable[..., Model], root: Path
) -> None:
    steps = [command(f"seq {i} {i + 400}", f"Looking at part {i}.") for i in range(8)]
    m = model({"agent": {"cache": [*steps, "Done: looked at every part."]}})
    agent = agent_for(m, root, "cache")
    result = await agent.run("Look at every part.")
    assert (result.stop_reason, result.summary, result.steps) == (
        "end_turn",
        "Done: looked at every part.",
        9,
    )

    bodies = m.bodies("cache")
    assert_valid(bodies)
    for n, body in enumerate(bodies):
        # the tool list's and the system prompt's breakpoints, plus the newest turn and the one before it
        assert breakpoint_count(body) == (3 if n == 0 else 4)
        messages = body["messages"]
        assert "cache_control" in messages[-1]["content"][-1]
        if n:
            assert "cache_control" in messages[-3]["content"][-1]  # where the previous request ended
        assert all("cache_control" not in b for msg in messages[:-3] for b in msg["content"])
    # the agent's own history carries no breakpoints (they are put on a copy per request)
    assert "cache_control" not in json.dumps(agent.messages)

    usages = [r["usage"] for r in records(agent, "assistant")]
    reads = [u["cache_read_input_tokens"] for u in usages]
    writes = [u["cache_creation_input_tokens"] for u in usages]
    assert reads[0] == 0
    assert all(b > a for a, b in itertools.pairwise(reads))
    # each step after the first writes about one turn (~2 KB of output), never the conversation again
    assert all(300 < w < 800 for w in writes[1:]), writes
    assert all(u["input_tokens"] < 50 for u in usages)
    # each request reads from the cache exactly the whole prompt of the request before it
    assert reads[1:] == [prompt_of(u) for u in usages[:-1]]
    assert result.usage.cache_read_input_tokens > 0.6 * sum(prompt_of(u) for u in usages)
    # cost is priced from what each call reported: writes at 1.25x, reads at 0.1x the input price
    price = price_for(MODEL)
    expected = sum(
        u["input_tokens"] * price.input
        + u["output_tokens"] * price.output
        + u["cache_creation_input_tokens"] * price.cache_write
        + u["cache_read_input_tokens"] * price.cache_read
        for u in usages
    )
    assert result.usage.cost_usd == pytest.approx(expected / 1_000_000)
    assert result.usage.calls == len(usages) == len(bodies)


# --- context shrinking --------------------------------------------------------------------------------------


async def test_prompt_is_shrunk_at_the_threshold_and_stays_valid(
    model: Callable[..., Model], root: Path
) -> None:
    n = 30
    steps = [command(f"seq {i} {i + 300}", f"Checked range {i}.") for i in range(n)]
    m = model({"agent": {"shrink": [*steps, "All ranges checked."]}})
    policy = ContextPolicy(threshold_tokens=8_000, window_tokens=200_000, keep_tool_results=2)
    agent = agent_for(m, root, "shrink", context=policy)
    result = await agent.run("Check every range.")
    assert result.stop_reason == "end_turn"
    assert result.summary == "All ranges checked."

    bodies = m.bodies("shrink")
    assert len(bodies) == n + 1
    assert_valid(bodies)
    # what the model reported for each prompt: never above the threshold
    sizes = [prompt_of(r["usage"]) for r in records(agent, "assistant")]
    assert max(sizes) <= policy.threshold_tokens
    assert max(prompt_tokens(b) for b in bodies) <= policy.threshold_tokens
    # it had to shrink, once, in one large step (each costs a cache write of what follows the change)
    [event] = result.context_events
    assert event["tokens_before"] > policy.threshold_tokens >= policy.target_tokens >= event["tokens_after"]
    assert event["cleared_tool_results"] > 10
    assert event["elided_turns"] == 0
    assert records(agent, "context")[0]["cleared_tool_results"] == event["cleared_tool_results"]

    last = bodies[-1]["messages"]
    assert last[0]["content"][0]["text"] == "Check every range."  # the task prompt is kept
    results = [
        b for msg in last if msg["role"] == "user" for b in msg["content"] if b["type"] == "tool_result"
    ]
    assert len(results) == n  # every call still has its answer ...
    # ... those older than the latest two when it shrank are cleared, the rest are whole
    cleared = event["cleared_tool_results"]
    assert event["step"] - 2 == cleared
    assert all(str(r["content"]).startswith(CLEARED_PREFIX) for r in results[:cleared])
    assert all(str(r["content"]).endswith("[exit code: 0]") for r in results[cleared:])
    texts = [
        b["text"] for msg in last if msg["role"] == "assistant" for b in msg["content"] if b["type"] == "text"
    ]
    assert texts == [f"Checked range {i}." for i in range(n)]  # the agent's own words are kept


async def test_oldest_turns_are_elided_when_clearing_is_not_enough(
    model: Callable[..., Model], root: Path
) -> None:
    # the agent's own long text is never cleared: only eliding whole old turns brings the prompt down
    n = 20
    steps = [command(f"echo {i}", f"Thinking about step {i}: " + "reasoning " * 150) for i in range(n)]
    m = model({"agent": {"elide": [*steps, "Finished after long thought."]}})
    policy = ContextPolicy(threshold_tokens=4_000, window_tokens=200_000, keep_tool_results=2)
    agent = agent_for(m, root, "elide", context=policy)
    result = await agent.run("Think hard.")
    # the scripted server routes by step: reaching the last step proves elided turns were still counted
    assert result.stop_reason == "end_turn"
    assert result.summary == "Finished after long thought."
    bodies = m.bodies("elide")
    assert_valid(bodies)
    assert max(prompt_of(r["usage"]) for r in records(agent, "assistant")) <= policy.threshold_tokens
    elided = sum(e["elided_turns"] for e in result.context_events)
    assert elided > 0
    # each shrink goes to the low-water mark, so shrinks are never back to back
    shrunk_at = [e["step"] for e in result.context_events]
    assert len(shrunk_at) >= 2
    assert all(b - a >= 3 for a, b in itertools.pairwise(shrunk_at))
    first = bodies[-1]["messages"][0]["content"]
    assert first[0]["text"] == "Think hard."
    assert first[-1]["text"].startswith(f"[otto-elided-turns: {elided}]")
    assert "Thinking about step 0" in first[-1]["text"]
    assert "run_command" in first[-1]["text"]
    # the latest turns are still there as they were
    assert bodies[-1]["messages"][-2]["content"][0]["text"].startswith(f"Thinking about step {n - 1}")


async def test_context_window_error_shrinks_and_retries_once(model: Callable[..., Model], root: Path) -> None:
    too_long = {"status": 400, "message": "prompt is too long: 210000 tokens > 200000 maximum"}
    steps: list[dict[str, Any]] = [command(f"seq {i} {i + 300}") for i in range(6)]
    steps[5] = {**steps[5], "errors": [too_long]}
    m = model(
        {"agent": {"ok": [*steps, "Done."], "fail": [*steps[:5], {**steps[5], "errors": [too_long] * 2}]}}
    )

    agent = agent_for(m, root, "ok")
    result = await agent.run("Go.")
    assert result.stop_reason == "end_turn"
    assert result.summary == "Done."
    [error] = records(agent, "model_error")
    assert "does not fit in the model's context window" in error["error"]
    [event] = result.context_events
    assert "too long" in event["reason"]
    assert event["cleared_tool_results"] > 0
    retried = m.bodies("ok")[5:7]
    assert prompt_tokens(retried[1]) < prompt_tokens(retried[0])  # the retry was smaller
    assert_valid(m.bodies("ok"))

    failing = agent_for(m, root, "fail")
    result = await failing.run("Go.")
    assert result.stop_reason == "context_window"
    assert "context window" in result.note
    assert "even after shrinking" in result.note
    assert result.summary.startswith("The agent stopped:")
    assert failing.exhausted  # a fix round does not continue it
    again = await failing.run("Fix the tests.")
    assert again.stop_reason == "ended"
    assert len(m.bodies("fail")) == 7


async def test_answer_running_out_of_window_is_retried_after_shrinking(
    model: Callable[..., Model], root: Path
) -> None:
    # a 6000-token window: the conversation fits, the long final answer does not (until room is made)
    steps = [command(f"seq {i} {i + 500}") for i in range(6)]  # ~4300 tokens in all
    final = "Summary: " + "all good " * 1000  # ~2250 tokens: with the ~4100 of the prompt, over 6000
    m = model(
        {
            "agent": {
                "win": [*steps, final],
                "never": [{"text": "x", "stop_reason": "model_context_window_exceeded"}],
            }
        },
        context_window=6_000,
    )
    policy = ContextPolicy(threshold_tokens=5_500, window_tokens=6_000, keep_tool_results=1)
    agent = agent_for(m, root, "win", context=policy)
    result = await agent.run("Go.")
    assert result.stop_reason == "end_turn"
    assert result.summary == final.strip()
    stops = [r["stop_reason"] for r in records(agent, "assistant")]
    assert stops[-2:] == ["model_context_window_exceeded", "end_turn"]
    assert "end of the context window" in result.context_events[-1]["reason"]

    never = agent_for(m, root, "never", context=policy)
    result = await never.run("Go.")
    assert result.stop_reason == "context_window"
    assert "ran out of context window" in result.note


async def test_prompt_above_the_window_is_never_sent(model: Callable[..., Model], root: Path) -> None:
    m = model({"agent": {"huge": ["never answered"]}})
    policy = ContextPolicy(threshold_tokens=1_000, window_tokens=2_000, keep_tool_results=1)
    agent = agent_for(m, root, "huge", context=policy)
    result = await agent.run("A task prompt far too long for the window. " * 400)
    assert result.stop_reason == "context_window"
    assert "no longer fits" in result.note
    assert m.bodies("huge") == []


# --- stop reasons -------------------------------------------------------------------------------------------


async def test_max_tokens_inside_a_tool_call_is_retried_with_more_room(
    model: Callable[..., Model], root: Path
) -> None:
    content = "".join(f"line {i}\n" for i in range(150))  # ~1000 characters: ~260 output tokens
    create = {
        "tool_use": {
            "name": "str_replace_based_edit_tool",
            "input": {"command": "create", "path": "big.txt", "file_text": content},
        }
    }
    m = model({"agent": {"cut": [{"text": "Writing big.txt.", **create}, "Wrote big.txt."]}})
    agent = agent_for(m, root, "cut", max_tokens=100, max_tokens_limit=400)
    result = await agent.run("Write big.txt.")
    assert result.stop_reason == "end_turn"
    assert (root / "big.txt").read_text() == content
    assert [b["max_tokens"] for b in m.bodies("cut")] == [100, 200, 400, 100]
    answers = records(agent, "assistant")
    assert [a["stop_reason"] for a in answers] == ["max_tokens", "max_tokens", "tool_use", "end_turn"]
    # the cut-off calls (no file_text) were never run: one tool result only, for the whole call
    [ran] = records(agent, "tool_results")
    [whole] = [b for b in answers[2]["content"] if b["type"] == "tool_use"]
    assert [r["tool_use_id"] for r in ran["results"]] == [whole["id"]]
    assert_valid(m.bodies("cut"))


async def test_tool_call_cut_off_at_the_limit_is_never_run(model: Callable[..., Model], root: Path) -> None:
    # a scripted max_tokens stop on a complete-looking call: even then it is not run
    marker = root / "ran.txt"
    cut = {"stop_reason": "max_tokens", **command(f"echo ran > {marker}")}
    smaller = command("echo smaller step")
    m = model({"agent": {"limit": [cut, smaller, "Done in smaller steps."], "stuck": [cut] * 9}})
    agent = agent_for(m, root, "limit", max_tokens=100, max_tokens_limit=200)
    result = await agent.run("Go.")
    assert result.stop_reason == "end_turn"
    assert not marker.exists()
    bodies = m.bodies("limit")
    assert [b["max_tokens"] for b in bodies] == [100, 200, 100, 100]
    asked = bodies[2]["messages"][-1]["content"][0]["text"]
    assert "reached the output limit (200 tokens)" in asked
    assert "smaller steps" in asked
    assert bodies[2]["messages"][1]["content"] == "(answer cut off at the output limit)"  # the call is gone
    assert_valid(bodies)

    stuck = agent_for(m, root, "stuck", max_tokens=100, max_tokens_limit=100)
    result = await stuck.run("Go.")
    assert result.stop_reason == "max_tokens"
    assert "output limit" in result.note
    assert not marker.exists()
    assert len(m.bodies("stuck")) == 3


async def test_summary_cut_off_is_kept_and_said(model: Callable[..., Model], root: Path) -> None:
    m = model({"agent": {"long": [{"text": "Changed things. " * 200}]}})
    agent = agent_for(m, root, "long", max_tokens=100, max_tokens_limit=200)
    result = await agent.run("Go.")
    assert result.stop_reason == "max_tokens"
    assert "cut off" in result.note
    assert result.summary.startswith("Changed things.")
    assert len(result.summary) < 900


async def test_refusal_ends_the_attempt_with_its_reason(model: Callable[..., Model], root: Path) -> None:
    m = model(
        {
            "agent": {
                "no": [
                    command("echo looking"),
                    {"text": "I can't help with that request.", "stop_reason": "refusal"},
                ]
            }
        }
    )
    agent = agent_for(m, root, "no")
    result = await agent.run("Do something bad.")
    assert result.stop_reason == "refusal"
    assert "declined" in result.note
    assert "I can't help with that request." in result.note
    assert "declined" in result.summary
    assert agent.exhausted
    again = await agent.run("The checks failed; fix them.")
    assert again.stop_reason == "ended"
    assert len(m.bodies("no")) == 2
    assert records(agent, "ended")[0]["stop_reason"] == "refusal"


async def test_attack_refusal_text_reaches_the_pr_bounded(model: Callable[..., Model], root: Path) -> None:
    # the refusal's words go into the PR: model output is untrusted, so they are bounded
    m = model({"agent": {"noisy": [{"text": "No. " + "@everyone " * 5000, "stop_reason": "refusal"}]}})
    result = await agent_for(m, root, "noisy").run("Go.")
    assert result.stop_reason == "refusal"
    assert len(result.note.encode()) < 700
    assert "bytes omitted" in result.note


async def test_pause_turn_is_continued(model: Callable[..., Model], root: Path) -> None:
    m = model(
        {
            "agent": {
                "pause": [
                    {"text": "Working on it, this takes a while.", "stop_reason": "pause_turn"},
                    command("echo continued"),
                    "Finished after the pause.",
                ]
            }
        }
    )
    agent = agent_for(m, root, "pause")
    result = await agent.run("Go.")
    assert result.stop_reason == "end_turn"
    assert result.summary == "Finished after the pause."
    bodies = m.bodies("pause")
    assert len(bodies) == 3
    # the paused turn went back as it was, for the model to continue it
    assert bodies[1]["messages"][-1]["role"] == "assistant"
    assert bodies[1]["messages"][-1]["content"][0]["text"] == "Working on it, this takes a while."
    assert_valid(bodies)


# --- bounded tool output ------------------------------------------------------------------------------------


async def test_tool_output_reaches_the_model_bounded(model: Callable[..., Model], root: Path) -> None:
    (root / "huge.py").write_text("".join(f"x_{i} = {i}\n" for i in range(30_000)))
    m = model(
        {
            "agent": {
                "big": [
                    command("seq 1 200000"),
                    {
                        "tool_use": {
                            "name": "str_replace_based_edit_tool",
                            "input": {"command": "view", "path": "huge.py"},
                        }
                    },
                    "Looked.",
                ]
            }
        }
    )
    agent = agent_for(m, root, "big", output_limit=4_000)
    await agent.run("Look.")
    results = [b for b in m.bodies("big")[-1]["messages"][-1]["content"]] + [
        b for b in m.bodies("big")[-1]["messages"][-3]["content"]
    ]
    for r in results:
        assert len(str(r["content"]).encode()) <= 4_000 + 256
        assert "bytes omitted" in str(r["content"])
    shown = str(results[0]["content"])
    assert "view_range" in shown
    assert "x_29999 = 29999" in shown
    assert "x_0 = 0" in shown
    assert "200000" in str(results[1]["content"])  # the tail of the command's output is kept
    assert records(agent, "tool_results")  # the transcript has them too
