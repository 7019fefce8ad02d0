"""The Simulator: world set-up, human actions (synchronous webhooks) and inspection helpers."""

from __future__ import annotations

from typing import Any

from app.dev.simulator import gitrepo
from app.dev.simulator.app_manifests import ManifestOps
from app.dev.simulator.checks import CheckOps
from app.dev.simulator.installations import InstallationOps
from app.dev.simulator.state import (
    Delivery,
    SimCheckRun,
    SimComment,
    SimIssue,
    SimPull,
    SimReaction,
    SimReview,
)


class Simulator(CheckOps, ManifestOps, InstallationOps):
    """In-memory GitHub with real git repositories under ``root_dir`` (see the package docstring)."""

    # ----------------------------------------------------------------- human actions
    def create_issue(self, owner: str, repo: str, title: str, body: str, user: str) -> int:
        r = self.repo(owner, repo)
        return self.open_issue(r, title, body, self.user(user), sync=True).number

    def add_label(self, owner: str, repo: str, number: int, label: str, sender: str) -> Delivery:
        r = self.repo(owner, repo)
        deliveries = self.add_labels(r, number, [label], self.user(sender), sync=True)
        is_pull = r.issues[number].is_pull
        return self.first_delivery(deliveries, "pull_request" if is_pull else "issues", "labeled")

    def comment(self, owner: str, repo: str, number: int, body: str, user: str) -> Delivery:
        r = self.repo(owner, repo)
        _created, deliveries = self.add_comment(r, number, body, self.user(user), None, sync=True)
        return self.first_delivery(deliveries, "issue_comment", "created")

    def submit_review(
        self,
        owner: str,
        repo: str,
        pr_number: int,
        user: str,
        state: str,
        body: str = "",
        commit_id: str | None = None,
        comments: list[dict[str, Any]] | None = None,
    ) -> Delivery:
        r = self.repo(owner, repo)
        _review, deliveries = self.add_review(
            r, pr_number, self.user(user), state, body, commit_id, list(comments or []), sync=True
        )
        return self.first_delivery(deliveries, "pull_request_review", "submitted")

    def push_commit(
        self,
        owner: str,
        repo: str,
        branch: str,
        files: dict[str, str | None],
        message: str,
        user: str,
        from_ref: str | None = None,
        force: bool = False,
    ) -> str:
        """A human commits ``files`` (None deletes) on ``branch`` (created from ``from_ref`` or the default
        branch when missing) and pushes; open pull requests on it get ``synchronize`` (synchronously).
        ``force``: the commit's parent is ``from_ref`` even when the branch exists (a force-push that drops
        the branch's commits since)."""
        r = self.repo(owner, repo)
        author = self.user(user)
        with self.lock:
            old = gitrepo.branch_sha(r.path, branch)
            start = gitrepo.resolve(r.path, from_ref or r.default_branch)
            parent = start if force else (old or start)
            sha = gitrepo.commit_files(r.path, parent, files, message, self.identity(author))
            gitrepo.update_ref(r.path, f"refs/heads/{branch}", sha, old or gitrepo.ZERO_SHA)
        self.on_refs_changed(r, [(f"refs/heads/{branch}", old, sha)], author, sync=True)
        return sha

    def close_issue(self, owner: str, repo: str, number: int, user: str) -> None:
        """``user`` closes an issue (its ``issues.closed`` webhook goes out from the delivery thread)."""
        self.update_issue(self.repo(owner, repo), number, {"state": "closed"}, self.user(user))

    def close_pull_request(self, owner: str, repo: str, number: int, user: str) -> Delivery:
        r = self.repo(owner, repo)
        deliveries = self.close_pull(r, self.get_pull(r, number), self.user(user), sync=True)
        return self.first_delivery(deliveries, "pull_request", "closed")

    def post_check_run(
        self,
        app_id: int,
        owner: str,
        repo: str,
        head_sha: str,
        name: str,
        conclusion: str | None = "success",
        status: str | None = None,
        output: dict[str, Any] | None = None,
    ) -> SimCheckRun:
        """Another App (e.g. a CI App) posts a check run; webhooks are queued like for REST calls."""
        r = self.repo(owner, repo)
        fields: dict[str, Any] = {
            "name": name,
            "head_sha": head_sha,
            "conclusion": conclusion,
            "status": status,
        }
        if output is not None:
            fields["output"] = output
        return self.create_check_run(r, self.app(app_id), fields)

    # ----------------------------------------------------------------- inspection
    def issue(self, owner: str, repo: str, number: int) -> SimIssue:
        return self.get_issue(self.repo(owner, repo), number)

    def comments(self, owner: str, repo: str, number: int) -> list[SimComment]:
        r = self.repo(owner, repo)
        with self.lock:
            return [r.comments[cid] for cid in self.get_issue(r, number).comment_ids]

    def reactions(
        self, owner: str, repo: str, number: int | None = None, comment_id: int | None = None
    ) -> list[SimReaction]:
        r = self.repo(owner, repo)
        with self.lock:
            if comment_id is not None:
                return list(self.get_comment(r, comment_id).reactions)
            assert number is not None, "pass an issue number or a comment id"
            return list(self.get_issue(r, number).reactions)

    def pulls(self, owner: str, repo: str) -> list[SimPull]:
        r = self.repo(owner, repo)
        with self.lock:
            for p in r.pulls.values():
                self.refresh_pull(r, p)
            return sorted(r.pulls.values(), key=lambda p: p.number)

    def pull(self, owner: str, repo: str, number: int) -> SimPull:
        r = self.repo(owner, repo)
        with self.lock:
            p = self.get_pull(r, number)
            self.refresh_pull(r, p)
            return p

    def reviews(self, owner: str, repo: str, number: int) -> list[SimReview]:
        return list(self.pull(owner, repo, number).reviews)

    def branches(self, owner: str, repo: str) -> dict[str, str]:
        r = self.repo(owner, repo)
        return {
            ref[len("refs/heads/") :]: sha
            for ref, sha in gitrepo.list_refs(r.path).items()
            if ref.startswith("refs/heads/")
        }

    def read_file(self, owner: str, repo: str, ref: str, path: str) -> str | None:
        data = gitrepo.read_blob(self.repo(owner, repo).path, ref, path)
        return None if data is None else data.decode()

    def check_runs(self, owner: str, repo: str, head_sha: str | None = None) -> list[SimCheckRun]:
        r = self.repo(owner, repo)
        with self.lock:
            return [run for run in r.check_runs.values() if head_sha is None or run.head_sha == head_sha]

    def git_log(self, owner: str, repo: str, ref: str) -> list[gitrepo.CommitInfo]:
        """Commits reachable from ``ref``, newest first (for merge assertions)."""
        r = self.repo(owner, repo)
        shas = gitrepo.git_out(r.path, "rev-list", ref).split()
        return [gitrepo.commit_info(r.path, sha) for sha in shas]
