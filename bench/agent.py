"""The agent loop on long tasks: the scripted model (its prompt cache and 200k-token context window
simulated as documented in ``app/dev/fake_llm``), the real ``Agent`` loop over HTTP with the real
``anthropic`` client, and real sandboxed commands through ``CommandTool`` in a scratch checkout.

(a) 40 steps, each reading ~4 KB with ``sed``: share of prompt tokens served from the cache, cost of the
    request at step 5 and at step 40.
(b) 300 steps of ~8 KB: the largest prompt sent, and whether the task completes.

"Before" is the agent loop as it was at commit ``BEFORE_COMMIT`` (system prompt and tool list cached, the
conversation resent uncached every step, nothing bounding it), loaded from git and run in the same process
against the same server and worktree; "after" is the current loop with default settings. Each variant uses
its own API key, so neither reads the other's cache. Costs use Otto's price table for the default model.
"""

from __future__ import annotations

import importlib.util
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from app.agent.tools import CommandTool, EditorTool
from bench.common import REPO_ROOT, bench_dir, run_main, say, table, targets, verdict

BEFORE_COMMIT = "bc55b04"  # the last commit before incremental caching and context management
MODEL = "claude-sonnet-4-6"
SMALL_THRESHOLD = 16_000  # the trade-off row: a bounded, small context
TASK_PROMPT = (
    "Task bench: read the service log in data.txt part by part and report anything unusual. "
    "Use run_command with sed to read one part at a time."
)


@dataclass
class Call:
    prompt: int
    read: int
    written: int
    cost: float


@dataclass
class Outcome:
    name: str
    calls: list[Call] = field(default_factory=list)
    completed: bool = False
    failure: str = ""
    shrinks: int = 0
    seconds: float = 0.0

    @property
    def prompt_tokens(self) -> int:
        return sum(c.prompt for c in self.calls)

    @property
    def cached_share(self) -> float:
        return sum(c.read for c in self.calls) / max(self.prompt_tokens, 1)

    @property
    def cost(self) -> float:
        return sum(c.cost for c in self.calls)

    def cost_at(self, step: int) -> float | None:
        return self.calls[step - 1].cost if len(self.calls) >= step else None

    @property
    def largest(self) -> int:
        return max((c.prompt for c in self.calls), default=0)


def _metered_llm(settings: Any, calls: list[Call]) -> Any:
    from app.llm import LLM, Reply

    class MeteredLLM(LLM):
        """Otto's model layer, recording what every answered call reported (the bench's instrument)."""

        async def create(self, **kwargs: Any) -> Reply:
            reply = await super().create(**kwargs)
            u = reply.usage
            prompt = u.input_tokens + u.cache_creation_input_tokens + u.cache_read_input_tokens
            calls.append(Call(prompt, u.cache_read_input_tokens, u.cache_creation_input_tokens, u.cost_usd))
            return reply

    return MeteredLLM(settings)


def _before_module(scratch: Path) -> ModuleType | None:
    """The agent loop as of ``BEFORE_COMMIT`` (then ``app/activities/agent.py``), importable under another
    name."""
    shown = subprocess.run(
        ["git", "show", f"{BEFORE_COMMIT}:app/activities/agent.py"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if shown.returncode != 0:
        return None
    path = scratch / "agent_before.py"
    # its tools have moved since (app/agent/tools.py); the command tool is replaced by the sandboxed one
    source = shown.stdout.replace("from app.activities.agent_tools import", "from app.agent.tools import")
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("otto_bench_agent_before", path)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _worktree(root: Path, lines: int) -> Path:
    """A scratch repository with a log of ``lines`` lines of ~80 characters."""
    wt = root / "wt"
    wt.mkdir(parents=True)
    rng = random.Random(7)
    words = ["request", "served", "cache", "miss", "user", "timeout", "retry", "ok", "GET", "POST", "/api/v1"]
    with (wt / "data.txt").open("w") as f:
        for i in range(lines):
            f.write(f"{i:06d} " + " ".join(rng.choice(words) for _ in range(11))[:72] + "\n")
    subprocess.run(["git", "init", "-q", str(wt)], check=True)
    return wt


def _script(steps: int, lines_per_step: int, total_lines: int) -> list[dict[str, Any]]:
    script: list[dict[str, Any]] = []
    for i in range(steps - 1):
        first = (i * lines_per_step) % (total_lines - lines_per_step) + 1
        script.append(
            {
                "text": f"Reading part {i + 1} of the log.",
                "tool_use": {
                    "name": "run_command",
                    "input": {"command": f"sed -n '{first},{first + lines_per_step - 1}p' data.txt"},
                },
            }
        )
    script.append({"text": "Read every part of the log; nothing unusual, so nothing to change."})
    return script


class _Sandboxes:
    """One real sandbox for the bench's commands (as Otto runs the agent's: bubblewrap, no network)."""

    def __init__(self) -> None:
        self.sandbox: Any = None

    def get(self, wt: Path) -> Any:
        if self.sandbox is None:
            from app.dev.local import LocalWorld
            from app.sandbox import Limits, Sandbox, SandboxConfig
            from app.sandbox.runner import find_bwrap

            root_uid = os.geteuid() == 0
            self.sandbox = Sandbox(
                SandboxConfig(
                    bwrap_path=find_bwrap(None),
                    tools=tuple(LocalWorld.sandbox_tools),
                    limits=Limits(),
                    uid=65534 if root_uid else None,
                    gid=65534 if root_uid else None,
                    uid_explicit=True,
                    probe_dir=wt.parent / "sandbox-probe",
                )
            )
            self.sandbox.ensure_available()
        return self.sandbox


_SANDBOX = _Sandboxes()


def _mounts(wt: Path) -> Any:
    from app.sandbox import Mounts

    home, tmp = wt.parent / "home", wt.parent / "tmp"
    owner = _SANDBOX.get(wt).owner
    for d in (home, tmp):
        d.mkdir(exist_ok=True)
    if owner:
        for p in [wt, home, tmp, *wt.rglob("*")]:
            os.lchown(p, *owner)
    return Mounts(wt, home, tmp)


async def _run_variant(
    name: str,
    agent_module: ModuleType,
    new: bool,
    base_url: str,
    wt: Path,
    task: str,
    steps: int,
    threshold: int | None = None,
) -> Outcome:
    from pydantic import SecretStr

    from app.llm import ModelError
    from app.settings import Settings

    settings = Settings(
        _env_file=None,
        anthropic_api_key=SecretStr(f"sk-bench-{task}"),
        anthropic_base_url=base_url,
        model_max_retries=0,
    )
    outcome = Outcome(name)
    llm = _metered_llm(settings, outcome.calls)
    shell = CommandTool(_SANDBOX.get(wt), _mounts(wt), 60, settings.command_output_limit, {})
    kwargs: dict[str, Any] = {
        "system": _system(),
        "task_id": task,
        "model": MODEL,
        "max_steps": steps + 5,
        "transcript": agent_module.Transcript(None, []),
    }
    if not new:  # the old loop built its own tools: give it the same sandboxed command tool
        agent_module.CommandTool = lambda *_a, **_k: shell  # type: ignore[attr-defined]
        kwargs |= {
            "root": wt,
            "command_timeout_s": 60,
            "output_limit": settings.command_output_limit,
            "env": {},
        }
    else:
        from app.domain.context import ContextPolicy

        kwargs |= {
            "editor": EditorTool(
                wt, output_limit=settings.command_output_limit, owner=_SANDBOX.get(wt).owner
            ),
            "shell": shell,
            "max_tokens": settings.agent_max_tokens,
            "max_tokens_limit": settings.agent_max_tokens_limit,
            "context": ContextPolicy.for_model(
                MODEL,
                threshold or settings.agent_context_threshold_tokens,
                settings.agent_context_keep_tool_results,
                settings.agent_max_tokens_limit,
            ),
        }
    agent = agent_module.Agent(llm, **kwargs)
    started = time.perf_counter()
    try:
        result = await agent.run(TASK_PROMPT)
        outcome.completed = result.stop_reason == "end_turn"
        outcome.failure = "" if outcome.completed else f"stopped: {result.stop_reason}"
        outcome.shrinks = len(getattr(result, "context_events", []))
    except ModelError as e:
        outcome.failure = f"failed at step {len(outcome.calls) + 1}: {e}"
    finally:
        outcome.seconds = time.perf_counter() - started
        await llm.aclose()
    return outcome


def _ratio(o: Outcome, late_step: int) -> float:
    early, late = o.cost_at(5), o.cost_at(late_step)
    return (late / early) if early and late else float("inf")


def _system() -> str:
    from app import prompts
    from app.sandbox.bwrap import WORKSPACE

    return prompts.render("agent_system", denied=".github/workflows/**", workspace=WORKSPACE)


def _rows(outcomes: list[Outcome], late_step: int) -> list[list[object]]:
    rows: list[list[object]] = []
    for o in outcomes:
        early, late = o.cost_at(5), o.cost_at(late_step)
        rows.append(
            [
                o.name,
                len(o.calls),
                "yes" if o.completed else "NO",
                o.prompt_tokens,
                f"{100 * o.cached_share:.0f}%",
                f"{o.cost:.3f}",
                None if early is None else f"{early:.4f}",
                None if late is None else f"{late:.4f}",
                None if early is None or late is None else f"{late / early:.2f}x",
                o.largest,
                o.shrinks,
                f"{1000 * o.seconds / max(len(o.calls), 1):.0f}",
            ]
        )
    return rows


HEADERS = [
    "variant",
    "calls",
    "done",
    "prompt tokens",
    "from cache",
    "USD",
    "USD step 5",
    "USD step {late}",
    "late/5",
    "largest prompt",
    "shrinks",
    "ms/step",
]


async def run(quick: bool) -> int:
    from app.dev.fake_llm import FakeLLM, create_app
    from app.domain.context import ContextPolicy
    from app.serve_thread import serve_in_thread
    from app.settings import Settings

    activities = importlib.import_module("app.agent.loop")
    root = bench_dir("agent")
    before = _before_module(root)
    long_steps = 120 if quick else 300
    total_lines = 6_000
    scenario = {
        "agent": {
            f"a-{v}": _script(40, 50, total_lines) for v in ("before", "after", "small")
        }  # 50 lines of ~80 bytes: ~4 KB
        | {f"b-{v}": _script(long_steps, 100, total_lines) for v in ("before", "after")}  # ~8 KB
    }
    fake = FakeLLM(scenario)  # any API key; the default 200k-token window
    server = serve_in_thread(create_app(fake), host="127.0.0.1", port=0, name="bench-scripted-model")
    try:
        wt = _worktree(root, total_lines)
        a: list[Outcome] = []
        b: list[Outcome] = []
        for variant, module, new in [("before", before, False), ("after", activities, True)]:
            if module is None:
                say(f"(the {variant} loop could not be loaded from git commit {BEFORE_COMMIT}; skipped)")
                continue
            label = f"{variant} ({BEFORE_COMMIT})" if variant == "before" else "after"
            a.append(await _run_variant(label, module, new, server.url, wt, f"a-{variant}", 40))
            b.append(await _run_variant(label, module, new, server.url, wt, f"b-{variant}", long_steps))
        small = f"after, threshold {SMALL_THRESHOLD // 1000}k"
        a.append(await _run_variant(small, activities, True, server.url, wt, "a-small", 40, SMALL_THRESHOLD))
    finally:
        server.stop()

    threshold = ContextPolicy.for_model(
        MODEL,
        Settings.model_fields["agent_context_threshold_tokens"].default,
        4,
        Settings.model_fields["agent_max_tokens_limit"].default,
    ).threshold_tokens
    table(
        "(a) 40 steps, ~4 KB tool results",
        [h.format(late=40) for h in HEADERS],
        _rows(a, 40),
    )
    table(
        f"(b) {long_steps} steps, ~8 KB tool results (threshold {threshold:,} tokens, window 200,000)",
        [h.format(late=long_steps) for h in HEADERS],
        _rows(b, long_steps),
    )
    for o in a + b:
        if o.failure:
            say(f"  {o.name}: {o.failure}")
    after_a = next((o for o in a if o.name == "after"), None)
    after_b = next((o for o in b if o.name == "after"), None)
    if after_a is None or after_b is None:
        return 1
    ratio = _ratio(after_a, 40)
    small_ratio = next((_ratio(o, 40) for o in a if "threshold" in o.name), float("inf"))
    targets(
        [
            (
                "(a) prompt tokens served from cache",
                ">= 85%",
                f"{100 * after_a.cached_share:.0f}%",
                verdict(after_a.cached_share >= 0.85, "below 85%"),
            ),
            ("(a) cost of step 40 / step 5", "<= 1.5x", f"{ratio:.2f}x", verdict(ratio <= 1.5, "above 1.5x")),
            (
                f"(a) the same, threshold {SMALL_THRESHOLD // 1000}k",
                "<= 1.5x",
                f"{small_ratio:.2f}x",
                verdict(small_ratio <= 1.5, "above 1.5x"),
            ),
            (
                f"({'b'}) largest prompt sent",
                f"<= {threshold:,}",
                f"{after_b.largest:,}",
                verdict(after_b.largest <= threshold, "above the threshold"),
            ),
            (
                "(b) the task completes",
                "yes",
                "yes" if after_b.completed else "no",
                verdict(after_b.completed, after_b.failure),
            ),
        ]
    )
    say(
        "\nTokens are the scripted model's (characters / 4); its cache follows Anthropic's documented rules, "
        "so the shares and ratios carry over, the absolute figures do not. With the cache, a step costs "
        "about 0.1x its whole prompt (reads) + 1.25x its new turn (writes): the read part grows with the "
        "conversation until the threshold bounds it, so a flat cost per step needs a small threshold (the "
        f"'threshold {SMALL_THRESHOLD // 1000}k' row: OTTO_AGENT_CONTEXT_THRESHOLD_TOKENS), at the price of "
        "the model seeing less of its earlier tool output."
    )
    return 0


def main(argv: list[str]) -> int:
    return run_main(lambda: run("--quick" in argv))
