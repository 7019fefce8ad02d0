"""The model layer: the official anthropic client (base URL and model from settings), usage priced per call.

Every system prompt carries an ``otto-role: <role>`` line, the run's ``otto-run: <owner>/<name>#<issue>``
and task prompts ``otto-task: <id>``, so logs, the scripted model server and humans reading transcripts can
tell which run and step a request belongs to.
The SDK retries 408/409/429/5xx/529 itself (honouring retry-after); Otto adds no second retry layer there.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anthropic
from anthropic.types import Message, MessageParam, TextBlockParam, ToolUnionParam

from app import observability
from app.domain.outages import http_outage
from app.domain.usage import BudgetExhausted, Usage, worst_case_cost
from app.settings import Settings


class ModelError(RuntimeError):
    """The model could not be reached or answered unusably; the message is safe to show users."""


class ModelUnavailable(ModelError):
    """The model API is down or overloaded (429, 529, 5xx, unreachable) after the SDK's own retries: an
    outage to wait out, not a failure of the step."""

    def __init__(self, message: str, detail: str) -> None:
        super().__init__(message)
        self.detail = detail  # "529 overloaded_error", "unreachable"


class ContextWindowExceeded(ModelError):
    """The API refused the prompt as too long for the model's context window (a 400)."""

    def __init__(self, message: str, prompt_tokens: int | None = None) -> None:
        super().__init__(message)
        self.prompt_tokens = prompt_tokens  # the API's count of the refused prompt, when it said


# The API's wording: "prompt is too long: 201234 tokens > 200000 maximum", and for older models "input length
# and `max_tokens` exceed context limit: 188240 + 21333 > 200000, ...".
_TOO_LONG = re.compile(r"prompt is too long|exceed context limit|context window", re.IGNORECASE)
_TOO_LONG_TOKENS = re.compile(r"(?:too long|context limit):\s*(\d+)")


@dataclass
class Reply:
    message: Message
    usage: Usage

    @property
    def text(self) -> str:
        return "".join(block.text for block in self.message.content if block.type == "text")


def run_ref(repo: str, issue_number: int) -> str:
    """How a prompt names its run: ``owner/name#N``."""
    return f"{repo}#{issue_number}"


def system_blocks(
    role: str, text: str, task_id: str | None = None, run: str | None = None
) -> list[TextBlockParam]:
    """The system prompt as one cached block: stable per role and run, so the prefix is served from the
    cache."""
    header = (
        f"otto-role: {role}"
        + (f"\notto-run: {run}" if run else "")
        + (f"\notto-task: {task_id}" if task_id else "")
    )
    return [{"type": "text", "text": f"{header}\n\n{text}", "cache_control": {"type": "ephemeral"}}]


class LLM:
    def __init__(self, settings: Settings) -> None:
        key = settings.anthropic_api_key.get_secret_value() if settings.anthropic_api_key else None
        if not key:
            raise RuntimeError("ANTHROPIC_API_KEY is not set (or run `otto demo` to use the scripted model)")
        self.default_model = settings.model
        self.client = anthropic.AsyncAnthropic(
            api_key=key,
            base_url=settings.anthropic_base_url,
            max_retries=settings.model_max_retries,
            timeout=settings.model_timeout_s,
        )

    async def create(
        self,
        *,
        role: str,
        system: str,
        messages: Sequence[MessageParam],
        tools: Sequence[ToolUnionParam] | None = None,
        model: str | None = None,
        max_tokens: int = 8192,
        task_id: str | None = None,
        run: str | None = None,
        budget_left_usd: float | None = None,
    ) -> Reply:
        """One Messages API call. With ``budget_left_usd``, a call whose worst case could exceed it is not
        made: :class:`BudgetExhausted` is raised instead (the budget fails closed)."""
        model_name = model or self.default_model
        kwargs: dict[str, Any] = {}
        if tools:
            kwargs["tools"] = list(tools)
        if budget_left_usd is not None:
            prompt = json.dumps(list(messages), default=str) + json.dumps(kwargs)
            prompt_chars = len(system) + len(prompt)
            worst = worst_case_cost(model_name, prompt_chars, max_tokens)
            if worst > budget_left_usd:
                raise BudgetExhausted(
                    f"the next {role} call could cost up to ${worst:.4f}; ${max(budget_left_usd, 0):.4f} "
                    "of the run's budget is left"
                )
        asked = time.monotonic()
        try:
            message = await self.client.messages.create(
                model=model_name,
                max_tokens=max_tokens,
                system=system_blocks(role, system, task_id, run),
                messages=list(messages),
                **kwargs,
            )
        except anthropic.BadRequestError as e:
            message = _error_message(e)
            if _TOO_LONG.search(message):
                m = _TOO_LONG_TOKENS.search(message)
                raise ContextWindowExceeded(
                    f"the prompt of the {role} step does not fit in the model's context window "
                    f"({message[:200]})",
                    int(m.group(1)) if m else None,
                ) from e
            raise ModelError(f"the model API answered 400 ({_error_type(e)}) for the {role} step") from e
        except anthropic.APIStatusError as e:
            words = f"the model API answered {e.status_code} ({_error_type(e)}) for the {role} step"
            if http_outage(e.status_code):
                raise ModelUnavailable(words, f"{e.status_code} {_error_type(e)}") from e
            raise ModelError(words) from e
        except anthropic.APITimeoutError as e:
            raise ModelUnavailable(f"the model API timed out for the {role} step", "timed out") from e
        except anthropic.APIConnectionError as e:
            words = f"the model API could not be reached for the {role} step"
            raise ModelUnavailable(words, "unreachable") from e
        except anthropic.APIResponseValidationError as e:
            raise ModelError(f"the model API returned an unreadable response for the {role} step") from e
        except anthropic.APIError as e:
            raise ModelError(f"the model API failed for the {role} step: {type(e).__name__}") from e
        except ValueError as e:  # the SDK lets a truncated JSON body through as a bare JSONDecodeError
            raise ModelError(f"the model API returned an unreadable response for the {role} step") from e
        if not isinstance(message, Message):  # e.g. an HTML page from a proxy with status 200
            raise ModelError(f"the model API returned something that is not a message for the {role} step")
        u = message.usage
        usage = Usage.of_call(
            model_name,
            input_tokens=u.input_tokens,
            output_tokens=u.output_tokens,
            cache_creation_input_tokens=u.cache_creation_input_tokens or 0,
            cache_read_input_tokens=u.cache_read_input_tokens or 0,
        ).model_copy(update={"model_s": time.monotonic() - asked})
        observability.model_call(role, model_name, usage)
        return Reply(message=message, usage=usage)

    async def aclose(self) -> None:
        await self.client.close()


def _error_message(e: anthropic.APIStatusError) -> str:
    body = e.body
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])
    return ""


def _error_type(e: anthropic.APIStatusError) -> str:
    body = e.body
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and isinstance(err.get("type"), str):
            return str(err["type"])
    return type(e).__name__
