"""Otto's own git (GitPython): every command with config, environment and hooks under Otto's control.

Otto's git never reads a config, attributes driver, hook or filter that sandboxed code could have written:

- the repositories it runs in are Otto's (bare mirrors, and per-checkout git dirs the sandbox never sees);
  a work tree the sandbox wrote is only ever *data* to it (``--work-tree``), its ``.git`` is ignored;
- every command gets ``core.hooksPath=/dev/null``, ``core.fsmonitor=false``, no system or global config, no
  credential helpers, no ``ext::`` transport, no redirects, and none of Otto's ``GIT_*`` environment;
  without configured drivers, ``.gitattributes`` in a work tree cannot name a filter or diff program to run.
- the installation token travels per command in git's environment (``GIT_CONFIG_COUNT/KEY/VALUE`` =
  ``http.extraheader``), never in a config file or URL, and is redacted from every error.
"""

from __future__ import annotations

import base64
import contextlib
import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import git as gitpython
from pydantic import BaseModel, ConfigDict, field_validator

from app.domain.outages import disk_full, git_outage
from app.domain.redact import redact

LOCAL_TIMEOUT_S = 300.0
NETWORK_TIMEOUT_S = 600.0
NETWORK_COMMANDS = frozenset({"push", "fetch", "clone", "ls-remote"})
# Applied to every git command: repositories are untrusted, the host's config is not ours.
SAFE_CONFIG = (
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "core.sshCommand=false",
    "-c",
    "commit.gpgsign=false",
    "-c",
    "tag.gpgsign=false",
    "-c",
    "protocol.ext.allow=never",
    "-c",
    "protocol.file.allow=user",
    "-c",
    "advice.detachedHead=false",
    "-c",
    "safe.directory=*",  # checkouts are owned by the sandbox's uid; Otto's config is its own
    "-c",
    "core.quotePath=false",
)


class WorkspaceError(RuntimeError):
    """A git operation failed; the message is redacted and safe to log or post."""


class PushRejected(WorkspaceError):
    """The remote refused the push (lease broken, not a fast-forward, protected branch...)."""


class RemoteUnavailable(WorkspaceError):
    """The remote did not answer a push or fetch (a 5xx, unreachable, timed out): an outage, not a refusal."""

    def __init__(self, message: str, detail: str) -> None:
        super().__init__(message)
        self.detail = detail  # "502", "unreachable", "timed out"


class DiskFull(WorkspaceError):
    """git could not write: the disk (or the quota) is full: an outage of the worker, not the repository."""


class MergeConflict(WorkspaceError):
    def __init__(self, branch: str, files: list[str]) -> None:
        listed = ", ".join(files[:20]) + (" ..." if len(files) > 20 else "")
        super().__init__(f"merge conflict merging branch {branch!r}" + (f" in: {listed}" if files else ""))
        self.branch = branch
        self.files = files


class Identity(Protocol):
    """Anything with ``name`` and ``email`` (e.g. ``app.github_auth.GitIdentity``)."""

    @property
    def name(self) -> str: ...

    @property
    def email(self) -> str: ...


class GitIdentity(BaseModel):
    """Author and committer of Otto's commits, e.g. ``otto[bot]`` / ``123+otto[bot]@users.noreply...``."""

    model_config = ConfigDict(frozen=True)
    name: str
    email: str

    @field_validator("name", "email")
    @classmethod
    def _one_line(cls, v: str) -> str:
        if not valid_identity_part(v):
            raise ValueError("must be a non-empty single line without '<' or '>'")
        return v


def valid_identity_part(v: str) -> bool:
    return bool(v.strip()) and not any(c in v for c in "\n\r\x00<>")


def identity_env(who: Identity) -> dict[str, str]:
    if not (valid_identity_part(who.name) and valid_identity_part(who.email)):
        raise WorkspaceError(f"invalid git identity {who.name!r} <{who.email!r}>")
    return {
        "GIT_AUTHOR_NAME": who.name,
        "GIT_AUTHOR_EMAIL": who.email,
        "GIT_COMMITTER_NAME": who.name,
        "GIT_COMMITTER_EMAIL": who.email,
    }


def base_env() -> dict[str, str]:
    """Git's environment: PATH and HOME-less basics only; nothing else of Otto's (no secrets, no GIT_*)."""
    return {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "",
        "SSH_ASKPASS": "",
        "GIT_LITERAL_PATHSPECS": "1",
        "HOME": os.devnull,
        "LC_ALL": "C",
        "LANGUAGE": "C",
    }


def auth_header(token: str) -> str:
    """The value of git's ``http.extraheader`` for an installation token."""
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    return f"AUTHORIZATION: basic {basic}"


def remote_invocation(token: str | None) -> tuple[list[str], dict[str, str]]:
    """Extra git arguments and environment for one remote command (fetch/push) with ``token``."""
    args = ["-c", "credential.helper=", "-c", "http.followRedirects=false"]
    env: dict[str, str] = {}
    if token:
        env = {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.extraheader",
            "GIT_CONFIG_VALUE_0": auth_header(token),
        }
    return args, env


def check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.username or parts.password:
        raise WorkspaceError("refusing a git URL with credentials in it (the token is passed per command)")
    if url.startswith("-"):
        raise WorkspaceError("invalid git URL")


def valid_branch_name(branch: str) -> bool:
    """git's ``check-ref-format`` rules for ``refs/heads/<branch>`` (plus: no leading ``-``)."""
    if (
        not branch
        or branch.startswith(("-", "/"))
        or branch.endswith(("/", "."))
        or branch == "@"
        or any(s in branch for s in ("..", "//", "@{"))
        or any(ord(c) < 0x20 or c == "\x7f" or c in " ~^:?*[\\" for c in branch)
    ):
        return False
    return all(part and not part.startswith(".") and not part.endswith(".lock") for part in branch.split("/"))


def check_branch(branch: str) -> None:
    if not valid_branch_name(branch):
        raise WorkspaceError(f"invalid branch name {branch!r}")


@dataclass(frozen=True)
class GitResult:
    returncode: int
    stdout: str
    stderr: str


def _environment(extra: Mapping[str, str] | None) -> dict[str, str]:
    """The whole environment of one git command: Otto's own variables (secrets included) blanked, since
    GitPython starts from ``os.environ``; then :func:`base_env` and ``extra``."""
    env = {k: "" for k in os.environ if k not in ("PATH",)}
    env.update(base_env())
    if extra:
        env.update(extra)
    return env


@dataclass
class Git:
    """Otto's git, through GitPython's ``git.cmd.Git``: the safe defaults on every command, an environment
    under Otto's control, a timeout; failures raise redacted ``WorkspaceError``s."""

    secrets: Sequence[str] = ()

    def run(
        self,
        args: Sequence[str],
        *,
        git_dir: Path | None = None,
        work_tree: Path | None = None,
        env: Mapping[str, str] | None = None,
        pre_args: Sequence[str] = (),
        timeout_s: float = LOCAL_TIMEOUT_S,
        check: bool = True,
        input_text: str | None = None,
    ) -> GitResult:
        argv = ["git", *SAFE_CONFIG, *pre_args]
        if git_dir is not None:
            argv += ["--git-dir", str(git_dir)]
        if work_tree is not None:
            argv += ["--work-tree", str(work_tree)]
        argv += list(args)
        runner = gitpython.cmd.Git(str(work_tree or git_dir or Path.cwd()))
        with contextlib.ExitStack() as stack:
            stdin = None
            if input_text is not None:
                stdin = stack.enter_context(tempfile.TemporaryFile())
                stdin.write(input_text.encode("utf-8", "surrogateescape"))
                stdin.seek(0)
            status, out, err = self._execute(runner, argv, stdin, env, timeout_s, args[0])
        result = GitResult(int(status or 0), str(out), str(err))
        if check and result.returncode != 0:
            raise self.failure(args, result)
        return result

    def failure(self, args: Sequence[str], proc: GitResult) -> WorkspaceError:
        """The error for a failed command: :class:`RemoteUnavailable` when the remote did not answer."""
        message = self.describe(args, proc)
        if disk_full(proc.stderr):
            return DiskFull(message)
        outage = git_outage(proc.stderr)
        return RemoteUnavailable(message, outage) if outage else WorkspaceError(message)

    def _execute(
        self,
        runner: gitpython.cmd.Git,
        argv: list[str],
        stdin: Any,
        env: Mapping[str, str] | None,
        timeout_s: float,
        name: str,
    ) -> tuple[int | None, str, str]:
        try:
            status, out, err = runner.execute(
                argv,
                istream=stdin if stdin is not None else subprocess.DEVNULL,
                with_extended_output=True,
                with_exceptions=False,
                env=_environment(env),
                kill_after_timeout=timeout_s,
                strip_newline_in_stdout=False,
            )
        except gitpython.exc.GitCommandError as exc:  # killed after the timeout
            message = self.clean(f"git {name} timed out after {timeout_s:g}s: {exc}")
            if name in NETWORK_COMMANDS:
                raise RemoteUnavailable(message, "timed out") from None
            raise WorkspaceError(message) from None
        except (OSError, gitpython.exc.GitCommandNotFound) as exc:
            raise WorkspaceError(self.clean(f"could not run git: {exc}")) from None
        return status, str(out), str(err)

    def describe(self, args: Sequence[str], proc: GitResult) -> str:
        detail = (proc.stderr.strip() or proc.stdout.strip())[-4000:]
        return self.clean(f"git {args[0]} failed (exit {proc.returncode}): {detail}")

    def clean(self, text: str) -> str:
        return redact(text, self.secrets)

    def rev(self, git_dir: Path, rev: str) -> str | None:
        """The commit sha ``rev`` names in ``git_dir``, or None."""
        proc = self.run(
            ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"],
            git_dir=git_dir,
            check=False,
        )
        return (proc.stdout.strip() or None) if proc.returncode == 0 else None


git = Git()
