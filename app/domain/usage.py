"""Token usage and its price. Cost is computed from the usage the model reports, cache reads/writes included.

Prices are USD per million tokens (Anthropic's published list prices; 5-minute cache writes cost 1.25× input,
cache reads 0.1× input). A model not in the table is priced as the most expensive known family, so an
unknown model can't make a budget look larger than it is.
"""

from __future__ import annotations

from pydantic import BaseModel


class Price(BaseModel):
    input: float
    output: float
    cache_write: float
    cache_read: float


def _price(inp: float, out: float) -> Price:
    return Price(input=inp, output=out, cache_write=inp * 1.25, cache_read=inp * 0.1)


# longest prefix wins
PRICES: dict[str, Price] = {
    "claude-opus-4-5": _price(5.0, 25.0),
    "claude-opus-4-6": _price(5.0, 25.0),
    "claude-opus-4": _price(15.0, 75.0),
    "claude-sonnet-4": _price(3.0, 15.0),
    "claude-3-7-sonnet": _price(3.0, 15.0),
    "claude-haiku-4": _price(1.0, 5.0),
    "claude-3-5-haiku": _price(0.8, 4.0),
}
FALLBACK_PRICE = _price(15.0, 75.0)


def price_for(model: str) -> Price:
    best = ""
    for prefix in PRICES:
        if model.startswith(prefix) and len(prefix) > len(best):
            best = prefix
    return PRICES[best] if best else FALLBACK_PRICE


class Usage(BaseModel):
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cost_usd: float = 0.0
    model_s: float = 0.0  # wall time spent waiting for the model's answers

    @classmethod
    def of_call(
        cls,
        model: str,
        input_tokens: int,
        output_tokens: int,
        cache_creation_input_tokens: int = 0,
        cache_read_input_tokens: int = 0,
    ) -> Usage:
        p = price_for(model)
        cost = (
            input_tokens * p.input
            + output_tokens * p.output
            + cache_creation_input_tokens * p.cache_write
            + cache_read_input_tokens * p.cache_read
        ) / 1_000_000
        return cls(
            calls=1,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_creation_input_tokens=cache_creation_input_tokens,
            cache_read_input_tokens=cache_read_input_tokens,
            cost_usd=cost,
        )

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            calls=self.calls + other.calls,
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_creation_input_tokens=self.cache_creation_input_tokens + other.cache_creation_input_tokens,
            cache_read_input_tokens=self.cache_read_input_tokens + other.cache_read_input_tokens,
            cost_usd=self.cost_usd + other.cost_usd,
            model_s=self.model_s + other.model_s,
        )

    @property
    def total_tokens(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_creation_input_tokens
            + self.cache_read_input_tokens
        )


class BudgetExhausted(RuntimeError):
    """The next model call could cost more than what is left of the run's budget."""


def worst_case_cost(model: str, prompt_chars: int, max_tokens: int) -> float:
    """An upper bound for one call: the prompt uncached (at 3 characters a token) and all output tokens."""
    p = price_for(model)
    return (prompt_chars / 3 * p.input + max_tokens * p.output) / 1_000_000


def run_budget(repo_budget: float | None, default: float, maximum: float) -> float:
    """The repository's budget if set, else the instance default; never above the instance maximum."""
    return min(repo_budget if repo_budget is not None else default, maximum)
