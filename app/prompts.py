"""Prompt texts (jinja2 templates under app/templates/prompts). Untrusted text is quoted by the caller."""

from __future__ import annotations

from typing import Any

import jinja2

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("app", "templates/prompts"),
    autoescape=False,  # noqa: S701 -- markdown / plain text for GitHub and the model, not HTML
    keep_trailing_newline=True,
    undefined=jinja2.StrictUndefined,
)


def render(name: str, **values: Any) -> str:
    return _env.get_template(f"{name}.md.j2").render(**values).strip() + "\n"
