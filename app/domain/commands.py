"""`/otto <command> [text]` in comments: recognised at the start of a line, outside code blocks and quotes."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel

CommandName = Literal["retry", "stop", "status", "help", "merge", "go", "plan", "revert", "unknown"]
KNOWN: tuple[CommandName, ...] = ("retry", "stop", "status", "help", "merge", "go", "plan", "revert")
_LINE = re.compile(r"^[ \t]{0,3}/otto(?:[ \t]+(?P<name>[A-Za-z-]+))?(?P<rest>.*)$", re.I)

HELP = """Otto understands these commands in a comment (at the start of a line):

- `/otto retry [guidance]` — on an Otto task PR: run that task again on the same branch, with your guidance
- `/otto merge` — on an Otto task PR whose checks fail: merge it as it is, on purpose
- `/otto go` — on the issue, when the plan waits for approval (`plan_approval: true`): start the work
- `/otto plan [feedback]` — on the issue, when the plan waits for approval: plan again (from the issue
  as it reads now if it was edited)
- `/otto stop` — stop the run: running agents end at once and nothing further is pushed
- `/otto revert` — on the issue of a change across repositories that merged only in part: open a PR
  reverting each part that merged
- `/otto status` — re-render the status comment on the issue now
- `/otto help` — this list

Only people with write access to the repository can use them."""


class Command(BaseModel):
    name: CommandName
    text: str = ""
    word: str = ""  # what was typed, for an unknown command


def parse_command(body: str) -> Command | None:
    """The first command in ``body``; its text is the rest of that line plus the lines after it."""
    lines = body.replace("\r\n", "\n").split("\n")
    in_fence = False
    for i, line in enumerate(lines):
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        m = _LINE.match(line)
        if m is None:
            continue
        rest = m.group("rest")
        if rest and not rest[0].isspace():  # e.g. "/ottomatic"
            continue
        word = (m.group("name") or "help").lower()
        text = "\n".join([rest.strip(), *lines[i + 1 :]]).strip()
        if word in KNOWN:
            return Command(name=word, text=text, word=word)
        return Command(name="unknown", text=text, word=word)
    return None
