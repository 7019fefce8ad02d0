"""The coding agent's client tools, confined to the task's worktree.

- :class:`EditorTool` implements Anthropic's text editor tool (type ``text_editor_20250728``, name
  ``str_replace_based_edit_tool``): ``view``, ``create``, ``str_replace``, ``insert``.
- :class:`CommandTool` runs one shell command per call in the task's sandbox (``bash -c`` in the
  workspace, see :mod:`app.sandbox.runner`: no network, nothing of Otto's visible, limits, timeout, bounded
  output). It is stateless: ``cd`` or exported variables do not carry over between calls. Its ``handle``
  accepts the input of Anthropic's ``bash_20250124`` tool (``command``, ``restart``) as well as a custom
  tool with just ``command``.

Both return a :class:`ToolOutcome` and never raise for the model's mistakes: bad input, unknown
commands, paths outside the worktree and I/O errors all become ``is_error=True`` outcomes.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.domain.logs import bound_text, utf8_len
from app.domain.paths import PathEscape, display_path, resolve_inside
from app.sandbox import Mounts, ProcResult, Sandbox

EDITOR_TOOL_NAME = "str_replace_based_edit_tool"
EDITOR_TOOL_TYPE = "text_editor_20250728"
BASH_TOOL_NAME = "bash"
BASH_TOOL_TYPE = "bash_20250124"

_LINE_NUMBER = re.compile(r"^ *(\d+)\t", re.MULTILINE)
# Files larger than this are not read into memory for viewing or editing.
MAX_FILE_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True)
class ToolOutcome:
    content: str
    is_error: bool = False


class _ToolError(Exception):
    """Raised inside a tool; turned into an error outcome."""


def _lines(text: str) -> list[str]:
    """The file's lines without their newlines (a final newline does not start another line)."""
    if not text:
        return []
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    return lines


def _numbered(lines: list[str], first_line: int) -> str:
    """``cat -n`` style: right-aligned line numbers, a tab, the line."""
    return "\n".join(f"{i + first_line:6}\t{line}" for i, line in enumerate(lines))


class EditorTool:
    """Anthropic's ``str_replace_based_edit_tool`` over the files of one worktree.

    Paths follow :func:`app.domain.paths.resolve_inside`: relative to the worktree root, or absolute
    under ``alias`` (e.g. ``/repo``, if the prompt tells the model the repository lives there) or
    under the worktree's real path. Paths are shown back to the model in the same form (relative, or
    under ``alias``), never as the host path.

    ``create`` overwrites an existing file (the model uses it to rewrite whole files) and says so.
    Files are read and written as UTF-8 with line endings preserved as they are.
    """

    def __init__(
        self,
        root: Path,
        *,
        output_limit: int = 16_000,
        alias: str | None = None,
        owner: tuple[int, int] | None = None,
    ) -> None:
        """``owner``: uid/gid that must own files and directories the tool creates (the sandbox's user)."""
        self.root = Path(os.path.realpath(root))
        self.output_limit = output_limit
        self.alias = alias
        self.owner = owner

    # -- dispatch ----------------------------------------------------------------------------------

    def handle(self, tool_input: Mapping[str, Any]) -> ToolOutcome:
        """Run one ``tool_use`` input block (``{"command": ..., "path": ..., ...}``)."""
        try:
            command = tool_input.get("command")
            path = tool_input.get("path")
            if not isinstance(path, str):
                raise _ToolError("Parameter `path` is required and must be a string.")
            if command == "view":
                return self.view(path, tool_input.get("view_range"))
            if command == "create":
                return self.create(path, _str_param(tool_input, "file_text"))
            if command == "str_replace":
                new_str = tool_input.get("new_str", "")
                if new_str is None:
                    new_str = ""
                if not isinstance(new_str, str):
                    raise _ToolError("Parameter `new_str` must be a string.")
                return self.str_replace(path, _str_param(tool_input, "old_str"), new_str)
            if command == "insert":
                line = tool_input.get("insert_line")
                if isinstance(line, bool) or not isinstance(line, int):
                    raise _ToolError("Parameter `insert_line` is required and must be an integer.")
                key = "insert_text" if "insert_text" in tool_input else "new_str"  # older tool versions
                return self.insert(path, line, _str_param(tool_input, key, shown="insert_text"))
            if command == "undo_edit":
                raise _ToolError("The `undo_edit` command is not supported by this tool version.")
            raise _ToolError(
                f"Unrecognized command {command!r}. Allowed commands are: view, create, str_replace, insert."
            )
        except _ToolError as exc:
            return self._error(str(exc))

    # -- commands ----------------------------------------------------------------------------------

    def view(self, path: str, view_range: Any = None) -> ToolOutcome:
        try:
            target = self._resolve(path)
            shown = self._show(target)
            if target.is_dir():
                if view_range is not None:
                    raise _ToolError("The `view_range` parameter is not allowed when `path` is a directory.")
                return self._ok(
                    f"Here are the files and directories up to 2 levels deep in {shown}, "
                    f"excluding hidden items:\n{self._listing(target)}"
                )
            lines = _lines(self._read(target, shown))
            first = 1
            if view_range is not None:
                start, end = self._check_range(view_range, len(lines))
                first = start
                lines = lines[start - 1 : (len(lines) if end == -1 else end)]
            body = _numbered(lines, first)
            return self._view_ok(
                f"Here's the result of running `cat -n` on {shown}:\n{body}\n", shown, lines, first
            )
        except (_ToolError, PathEscape) as exc:
            return self._error(str(exc))

    def create(self, path: str, file_text: str) -> ToolOutcome:
        try:
            target = self._resolve(path)
            shown = self._show(target)
            if target.is_dir():
                raise _ToolError(f"{shown} is a directory; cannot create a file there.")
            existed = target.exists() or target.is_symlink()
            if existed and not target.is_file():
                raise _ToolError(f"{shown} exists and is not a regular file; cannot create a file there.")
            missing = [d for d in [target.parent, *target.parent.parents] if not d.exists()]
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                self._write(target, file_text)
                for created in [*missing, target]:
                    self._own(created)
            except OSError as exc:
                raise _ToolError(f"Could not write {shown}: {exc.strerror or exc}") from exc
            if existed:
                return self._ok(f"File overwritten successfully at: {shown}")
            return self._ok(f"File created successfully at: {shown}")
        except (_ToolError, PathEscape) as exc:
            return self._error(str(exc))

    def str_replace(self, path: str, old_str: str, new_str: str) -> ToolOutcome:
        try:
            target = self._resolve(path)
            shown = self._show(target)
            text = self._read(target, shown)
            if old_str == "":
                raise _ToolError("Parameter `old_str` must not be empty.")
            count = text.count(old_str)
            if count == 0:
                raise _ToolError(
                    f"No replacement was performed, old_str `{old_str}` did not appear verbatim in {shown}."
                )
            if count > 1:
                lines = _occurrence_lines(text, old_str)
                raise _ToolError(
                    f"No replacement was performed. Multiple occurrences ({count}) of old_str `{old_str}` "
                    f"in lines {lines}. Please ensure it is unique."
                )
            at = text.index(old_str)
            new_text = text[:at] + new_str + text[at + len(old_str) :]
            self._write_existing(target, new_text, shown)
            start_line = text.count("\n", 0, at) + 1
            snippet = self._snippet(new_text, start_line, new_str.count("\n") + 1)
            return self._ok(
                f"The file {shown} has been edited. Here's the result of running `cat -n` on a snippet of "
                f"{shown}:\n{snippet}\nReview the changes and make sure they are as expected. "
                "Edit the file again if necessary."
            )
        except (_ToolError, PathEscape) as exc:
            return self._error(str(exc))

    def insert(self, path: str, insert_line: int, insert_text: str) -> ToolOutcome:
        try:
            target = self._resolve(path)
            shown = self._show(target)
            text = self._read(target, shown)
            n = len(_lines(text))
            if insert_line < 0 or insert_line > n:
                raise _ToolError(
                    f"Invalid `insert_line` parameter: {insert_line}. It should be within the range of lines "
                    f"of the file: [0, {n}]."
                )
            newline = "\r\n" if "\r\n" in text else "\n"
            block = insert_text if insert_text.endswith("\n") else insert_text + newline
            if insert_line == 0:
                offset = 0
            else:
                offset = _line_end_offset(text, insert_line)
                if offset == len(text) and text and not text.endswith("\n"):
                    block = newline + block.removesuffix(newline)
            new_text = text[:offset] + block + text[offset:]
            self._write_existing(target, new_text, shown)
            snippet = self._snippet(new_text, insert_line + 1, insert_text.count("\n") + 1)
            return self._ok(
                f"The file {shown} has been edited. Here's the result of running `cat -n` on a snippet of "
                f"the edited file:\n{snippet}\nReview the changes and make sure they are as expected "
                "(correct indentation, no duplicate lines, etc). Edit the file again if necessary."
            )
        except (_ToolError, PathEscape) as exc:
            return self._error(str(exc))

    # -- helpers -----------------------------------------------------------------------------------

    def _resolve(self, path: str) -> Path:
        return resolve_inside(self.root, path, alias=self.alias)

    def _show(self, target: Path) -> str:
        return display_path(self.root, target, alias=self.alias)

    def _ok(self, content: str) -> ToolOutcome:
        return ToolOutcome(bound_text(content, self.output_limit), False)

    def _view_ok(self, text: str, shown: str, lines: list[str], first: int) -> ToolOutcome:
        """A file view within the output limit: its head and tail, and how to page through the middle."""
        if utf8_len(text) <= self.output_limit:
            return ToolOutcome(text, False)
        last = first + len(lines) - 1

        def hint(example: str) -> str:
            return (
                f"\n[{shown}: lines {first}-{last} do not fit in one view ({utf8_len(text)} bytes; the limit "
                f"is {self.output_limit}): the middle was left out. Page through it with `view_range`, e.g. "
                f"{example}.]\n"
            )

        room = self.output_limit - utf8_len(hint(f"[{last}, {last}]"))
        shortened = bound_text(text, room)
        before_marker = shortened.split("bytes omitted]", 1)[0]
        shown_numbers = [int(m) for m in _LINE_NUMBER.findall(before_marker)]
        start = min(shown_numbers[-1] + 1, last) if shown_numbers else first
        per_view = max(len(lines) * room // utf8_len(text), 1)
        return ToolOutcome(shortened + hint(f"[{start}, {min(start + per_view - 1, last)}]"), False)

    def _error(self, message: str) -> ToolOutcome:
        return ToolOutcome(bound_text(f"Error: {message}", self.output_limit), True)

    def _read(self, target: Path, shown: str) -> str:
        if not target.exists():
            raise _ToolError(f"The path {shown} does not exist. Please provide a valid path.")
        if not target.is_file():
            raise _ToolError(f"The path {shown} is not a regular file.")
        size = target.stat().st_size
        if size > MAX_FILE_BYTES:
            raise _ToolError(f"{shown} is too large to open ({size} bytes; the limit is {MAX_FILE_BYTES}).")
        try:
            data = target.read_bytes()
        except OSError as exc:
            raise _ToolError(f"Could not read {shown}: {exc.strerror or exc}") from exc
        if b"\x00" in data:
            raise _ToolError(f"{shown} looks like a binary file; it cannot be viewed or edited as text.")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _ToolError(f"{shown} is not valid UTF-8 text; it cannot be viewed or edited.") from exc

    @staticmethod
    def _write(target: Path, text: str) -> None:
        """Write a regular file, never following a symlink or blocking on a FIFO someone left there."""
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(errno.EINVAL, "not a regular file")
            os.ftruncate(fd, 0)
            with os.fdopen(fd, "w", encoding="utf-8", newline="", closefd=False) as fh:
                fh.write(text)
        finally:
            os.close(fd)

    def _own(self, path: Path) -> None:
        if self.owner is not None:
            os.lchown(path, *self.owner)

    def _write_existing(self, target: Path, text: str, shown: str) -> None:
        try:
            self._write(target, text)
        except OSError as exc:
            raise _ToolError(f"Could not write {shown}: {exc.strerror or exc}") from exc

    @staticmethod
    def _check_range(view_range: Any, n_lines: int) -> tuple[int, int]:
        if (
            not isinstance(view_range, list | tuple)
            or len(view_range) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in view_range)
        ):
            raise _ToolError("Invalid `view_range`. It should be a list of two integers.")
        start, end = int(view_range[0]), int(view_range[1])
        if start < 1 or start > max(n_lines, 1):
            raise _ToolError(
                f"Invalid `view_range`: {[start, end]}. Its first element `{start}` should be within the "
                f"range of lines of the file: [1, {n_lines}]."
            )
        if end != -1 and end < start:
            raise _ToolError(
                f"Invalid `view_range`: {[start, end]}. Its second element `{end}` should be larger or equal "
                f"than its first `{start}` (or -1 for the end of the file)."
            )
        if end > n_lines:
            raise _ToolError(
                f"Invalid `view_range`: {[start, end]}. Its second element `{end}` should be smaller than "
                f"the number of lines in the file: `{n_lines}` (or -1 for the end of the file)."
            )
        return start, end

    def _listing(self, directory: Path) -> str:
        entries: list[str] = []

        def walk(d: Path, depth: int) -> None:
            try:
                children = sorted(d.iterdir(), key=lambda p: p.name)
            except OSError:
                return
            for child in children:
                if child.name.startswith("."):
                    continue
                is_dir = child.is_dir() and not child.is_symlink()
                entries.append(self._show(child) + ("/" if is_dir else ""))
                if is_dir and depth < 2:
                    walk(child, depth + 1)

        entries.append(self._show(directory) + "/")
        walk(directory, 1)
        return "\n".join(entries) + "\n"

    @staticmethod
    def _snippet(text: str, first_changed: int, n_changed: int, context: int = 4) -> str:
        lines = _lines(text)
        start = max(1, first_changed - context)
        end = min(len(lines), first_changed + n_changed - 1 + context)
        return _numbered(lines[start - 1 : end], start)


def _str_param(tool_input: Mapping[str, Any], key: str, *, shown: str | None = None) -> str:
    value = tool_input.get(key)
    if not isinstance(value, str):
        raise _ToolError(f"Parameter `{shown or key}` is required and must be a string.")
    return value


def _occurrence_lines(text: str, needle: str) -> list[int]:
    lines: list[int] = []
    at = text.find(needle)
    while at != -1:
        lines.append(text.count("\n", 0, at) + 1)
        at = text.find(needle, at + 1)
    return lines


def _line_end_offset(text: str, line: int) -> int:
    """Offset just after the newline that ends 1-based ``line`` (or the end of the text)."""
    offset = 0
    for _ in range(line):
        nl = text.find("\n", offset)
        if nl == -1:
            return len(text)
        offset = nl + 1
    return offset


class CommandTool:
    """Runs shell commands in the task's sandbox: its workspace, no network, limits, timeout, bounded output.

    ``is_error`` is set only when the command could not complete (timeout, a sandbox limit, or it could not be
    started); a non-zero exit code is a normal result and is stated in the content.
    """

    def __init__(
        self,
        sandbox: Sandbox,
        mounts: Mounts,
        timeout_s: float,
        output_limit: int,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.sandbox = sandbox
        self.mounts = mounts
        self.timeout_s = timeout_s
        self.output_limit = output_limit
        self.extra_env = dict(extra_env or {})

    def run(self, command: str) -> ToolOutcome:
        if not command.strip():
            return ToolOutcome("Error: no command given.", True)
        result = self.sandbox.run(
            command,
            mounts=self.mounts,
            timeout_s=self.timeout_s,
            output_limit=self.output_limit,
            env=self.extra_env,
        )
        return ToolOutcome(format_result(result, self.timeout_s), result.timed_out or bool(result.note))

    def handle(self, tool_input: Mapping[str, Any]) -> ToolOutcome:
        """Input of the ``bash`` tool: ``{"command": str}`` or ``{"restart": true}``."""
        if tool_input.get("restart"):
            return ToolOutcome("The tool has been restarted (each command runs in a fresh shell anyway).")
        command = tool_input.get("command")
        if not isinstance(command, str):
            return ToolOutcome("Error: parameter `command` is required and must be a string.", True)
        return self.run(command)


def format_result(result: ProcResult, timeout_s: float) -> str:
    """Output followed by one status line: exit code, or the timeout note."""
    out = result.output
    if out and not out.endswith("\n"):
        out += "\n"
    if not out:
        out = "(no output)\n"
    if result.timed_out:
        return out + f"[timed out after {timeout_s:g}s: the command and all its child processes were killed]"
    if result.note:
        return (
            out + f"[exit code: {result.exit_code}; {result.note}: the command and its processes were ended]"
        )
    return out + f"[exit code: {result.exit_code}]"
