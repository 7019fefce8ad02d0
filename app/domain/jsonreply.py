"""Reading a JSON object out of a model's text answer."""

from __future__ import annotations

import json
from typing import Any


class NotJSON(ValueError):
    pass


def extract_json_object(text: str) -> dict[str, Any]:
    """The first complete JSON object in ``text`` (models sometimes wrap it in prose or ``` fences)."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
            continue
        if isinstance(value, dict):
            return value
        start = text.find("{", start + 1)
    raise NotJSON("the answer contains no JSON object")
