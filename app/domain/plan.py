"""The plan the model proposes: schema, validation, dependency batches, branch names."""

from __future__ import annotations

import re
import unicodedata

from pydantic import BaseModel, Field, field_validator, model_validator

TASK_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"


class PlannedTask(BaseModel):
    id: str = Field(pattern=TASK_ID_PATTERN, description="short stable id, e.g. t1")
    title: str = Field(min_length=1, max_length=120)
    intent: str = Field(min_length=1, max_length=4000)
    acceptance: list[str] = Field(default_factory=list, max_length=20)
    files: list[str] = Field(default_factory=list, max_length=50)
    depends_on: list[str] = Field(default_factory=list)
    repo: str | None = Field(
        default=None, max_length=140
    )  # owner/name of another repository (None: the issue's)

    @field_validator("title")
    @classmethod
    def _one_line(cls, v: str) -> str:
        return " ".join(v.split())


class Plan(BaseModel):
    summary: str = ""
    tasks: list[PlannedTask] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Plan:
        ids = [t.id for t in self.tasks]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"task ids must be unique; repeated: {', '.join(dupes)}")
        known = set(ids)
        for t in self.tasks:
            unknown = [d for d in t.depends_on if d not in known]
            if unknown:
                raise ValueError(f"task {t.id} depends on unknown task(s): {', '.join(unknown)}")
            if t.id in t.depends_on:
                raise ValueError(f"task {t.id} depends on itself")
        batches(self)  # raises on cycles
        return self

    def task(self, task_id: str) -> PlannedTask:
        for t in self.tasks:
            if t.id == task_id:
                return t
        raise KeyError(task_id)


def batches(plan: Plan) -> list[list[str]]:
    """Dependency levels: batch n holds the tasks whose dependencies all sit in batches < n.

    Order inside a batch follows the plan's order. A cycle raises ValueError.
    """
    remaining = {t.id: set(t.depends_on) for t in plan.tasks}
    order = [t.id for t in plan.tasks]
    done: set[str] = set()
    levels: list[list[str]] = []
    while remaining:
        level = [tid for tid in order if tid in remaining and remaining[tid] <= done]
        if not level:
            raise ValueError(f"dependency cycle among tasks: {', '.join(sorted(remaining))}")
        levels.append(level)
        done.update(level)
        for tid in level:
            del remaining[tid]
    return levels


def slugify(text: str, max_len: int = 40) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:max_len].rstrip("-") or "task"


def branch_name(issue_number: int, task: PlannedTask, labeling: int = 1) -> str:
    """``otto/7/t1-…`` for the issue's first run, ``otto/7.2/t1-…`` for its second labeling's: each run has
    its own branches, so a later run never builds on an earlier one's work in progress."""
    run = f"{issue_number}.{labeling}" if labeling > 1 else str(issue_number)
    return f"otto/{run}/{task.id}-{slugify(task.title)}"
