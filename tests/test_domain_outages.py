"""Outages told apart from failures, in words: git's and GitHub's "not now", a full disk, the waits, and the
texts a person reads (the status line while waiting, the run's end when the deadline passes)."""

from __future__ import annotations

import errno
from datetime import UTC, datetime

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from app.domain.outages import Service, Waiting, backoff_s, disk_full, git_outage, local_outage
from app.domain.render import render_status
from app.domain.run import RepoRef, RunPhase, RunState
from app.outages import Outage, as_outage, github_outage
from app.workflows.explain import explain

REPO = RepoRef(installation_id=1, owner="acme", name="api", repo_id=9)


@pytest.mark.parametrize(
    ("stderr", "outage"),
    [
        ("fatal: unable to access 'http://x/a.git/': The requested URL returned error: 502", "502"),
        ("error: RPC failed; HTTP 503 curl 22 The requested URL returned error: 503", "503"),
        (
            "fatal: unable to access 'https://github.com/a/b.git/': Could not resolve host: github.com",
            "unreachable",
        ),
        (
            "fatal: unable to access '...': Failed to connect to github.com port 443: Connection refused",
            "unreachable",
        ),
        ("fatal: the remote end hung up unexpectedly", "unreachable"),
        ("fatal: unable to access '...': The requested URL returned error: 403", None),  # refused: permanent
        ("! [rejected] HEAD -> otto/1 (stale info)", None),
        ("fatal: couldn't find remote ref refs/heads/nope", None),
    ],
)
def test_git_failures_that_are_outages_and_those_that_are_not(stderr: str, outage: str | None) -> None:
    assert git_outage(stderr) == outage


def test_a_full_disk_in_gits_words_and_in_an_exception_chain() -> None:
    assert disk_full("error: unable to create temporary file: No space left on device")
    assert not disk_full("fatal: not a git repository")
    wrapped = RuntimeError("writing the transcript failed")
    wrapped.__cause__ = OSError(errno.ENOSPC, "No space left on device")
    assert local_outage(wrapped) == (Service.DISK, "no space left on device")
    assert local_outage(OSError(errno.EMFILE, "Too many open files")) == (
        Service.FILES,
        "too many open files",
    )
    assert local_outage(OSError(errno.EACCES, "Permission denied")) is None
    assert local_outage(ValueError("no")) is None


def test_github_unreachable_or_5xx_is_an_outage_4xx_is_not() -> None:
    request = httpx.Request("GET", "https://api.github.com/repos/a/b")

    def answered(status: int) -> httpx.HTTPStatusError:
        return httpx.HTTPStatusError("x", request=request, response=httpx.Response(status, request=request))

    refused = github_outage(httpx.ConnectError("refused", request=request))
    assert refused is not None
    assert (refused.service, refused.detail) == ("GitHub", "unreachable")
    timed_out = as_outage(httpx.ReadTimeout("slow", request=request))
    assert timed_out is not None
    assert timed_out.detail == "timed out"
    bad_gateway = github_outage(answered(502))
    assert bad_gateway is not None
    assert bad_gateway.detail == "502"
    assert github_outage(answered(404)) is None
    assert github_outage(answered(422)) is None


def test_waits_double_up_to_the_cap() -> None:
    assert [backoff_s(n, 10, 300) for n in range(1, 8)] == [10, 20, 40, 80, 160, 300, 300]


def test_the_wait_in_words_in_the_status_comment() -> None:
    since = datetime(2026, 12, 5, 10, 2, 31, tzinfo=UTC)
    waiting = Waiting(service=Service.GITHUB, detail="502", since=since, step="updating this comment")
    assert waiting.headline() == "⏸️ waiting for GitHub: 502 since 10:02 UTC, retrying"
    state = RunState(run_id="otto/9/7", repo=REPO, issue_number=7, phase=RunPhase.RUNNING, waiting=waiting)
    body = render_status(state)
    assert (
        "> ⏸️ waiting for GitHub: 502 since 10:02 UTC, retrying (updating this comment). Otto carries on"
        in body
    )
    assert "⏸️" not in render_status(state.model_copy(update={"waiting": None}))


def test_a_run_that_outlived_its_deadline_and_a_refusal_read_as_words() -> None:
    failure = Outage(Service.GITHUB, "502").failure()
    ended = explain(failure)
    assert ended.startswith(
        "GitHub is not available (502), and it did not come back before the run's deadline"
    )
    assert "Response(" not in ended
    refused = ApplicationError(
        "Response(422 Unprocessable Entity, data_model=typing.Any)", type="RequestFailed"
    )
    assert explain(refused) == "GitHub refused a request Otto made: 422 Unprocessable Entity"


def test_a_crashed_tries_spend_is_read_back_from_its_last_heartbeat() -> None:
    from app.activities.tasks import git_headline, spent_in_heartbeat
    from app.contracts.io import AttemptProgress, TaskInput
    from app.domain.usage import Usage
    from tests.workflow_stubs import planned

    inp = TaskInput.model_validate(
        {
            "run_id": "otto/9/7",
            "repo": REPO.model_dump(),
            "issue_number": 7,
            "issue_title": "t",
            "base_branch": "main",
            "clone_url": "http://x/a.git",
            "task": planned("t1").model_dump(),
            "branch": "otto/7/t1",
            "attempt": 2,
            "config": {},
            "model": "claude-sonnet-4-6",
        }
    )
    spent = Usage.of_call("claude-sonnet-4-6", 1000, 100)
    beat = AttemptProgress(task="t1", attempt=2, spent=spent).model_dump(mode="json")
    assert spent_in_heartbeat([beat], inp) == spent
    other = AttemptProgress(task="t1", attempt=1, spent=spent).model_dump(mode="json")
    assert spent_in_heartbeat([other], inp) is None  # an earlier attempt's: not this one's spend
    assert spent_in_heartbeat([], inp) is None
    assert spent_in_heartbeat(["garbage"], inp) is None
    long = "git push failed (exit 128): fatal: unable to access 'x'\n" + "remote: detail\n" * 50
    assert git_headline(long) == "git push failed (exit 128): fatal: unable to access 'x'"
    assert len(git_headline("x" * 500)) == 200
