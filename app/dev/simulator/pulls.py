"""Pull requests: creation rules, live head/base shas from git, real trial merges, merging, reviews."""

from __future__ import annotations

import re
from typing import Any

from app.dev.simulator import gitrepo, render
from app.dev.simulator.core import node_id
from app.dev.simulator.errors import ApiError, not_found, validation_failed
from app.dev.simulator.issues import IssueOps
from app.dev.simulator.state import (
    Delivery,
    SimIssue,
    SimPull,
    SimRepo,
    SimReview,
    SimReviewComment,
    SimUser,
    now,
)

GITHUB_IDENTITY = gitrepo.Identity("GitHub", "noreply@github.com")
REVIEW_STATES = {"APPROVED", "CHANGES_REQUESTED", "COMMENTED"}
REVIEW_EVENTS = {"APPROVE": "APPROVED", "REQUEST_CHANGES": "CHANGES_REQUESTED", "COMMENT": "COMMENTED"}
PUSH_COMMITS_LIMIT = 2048  # GitHub's cap on a push payload's ``commits`` (20 is the events API's)
SELF_REVIEW_REFUSED = {
    "APPROVED": "Can not approve your own pull request",
    "CHANGES_REQUESTED": "Can not request changes on your own pull request",
}


def strip_heads(ref: str) -> str:
    return ref[len("refs/heads/") :] if ref.startswith("refs/heads/") else ref


class PullOps(IssueOps):
    lazy_mergeability = False  # set True to answer ``mergeable: null`` first, like GitHub

    # ----------------------------------------------------------------- lookups and rendering
    def get_pull(self, r: SimRepo, number: int) -> SimPull:
        with self.lock:
            found = r.pulls.get(number)
            if found is None:
                raise not_found()
            return found

    def refresh_pull(self, r: SimRepo, p: SimPull) -> None:
        """Read head and base shas live from the git refs (frozen once the pull request is closed)."""
        if p.state != "open":
            return
        head = gitrepo.branch_sha(r.path, p.head_ref)
        base = gitrepo.branch_sha(r.path, p.base_ref)
        if head is not None:
            p.last_head_sha = head
        if base is not None:
            p.last_base_sha = base

    def pull_stats(self, r: SimRepo, p: SimPull) -> dict[str, Any]:
        if p.frozen_stats is not None:
            return dict(p.frozen_stats)
        base, head = p.last_base_sha, p.last_head_sha
        mb = gitrepo.merge_base(r.path, base, head) or base
        files, adds, dels = gitrepo.diff_stats(r.path, mb, head)
        commits = len(gitrepo.commits_between(r.path, base, head))
        mergeable = gitrepo.trial_merge(r.path, base, head) is not None
        if not mergeable:
            state = "dirty"
        elif p.draft:
            state = "draft"
        elif self.failing_required(r, head):
            state = "blocked"
        elif self.head_has_failing_checks(r, head):
            state = "unstable"
        else:
            state = "clean"
        return {
            "commits": commits,
            "additions": adds,
            "deletions": dels,
            "changed_files": files,
            "mergeable": mergeable,
            "rebaseable": mergeable,
            "mergeable_state": state,
        }

    def failing_required(self, r: SimRepo, sha: str) -> list[str]:
        """Required checks (branch protection) that have not succeeded on ``sha``."""
        latest = {
            run.name: run.conclusion
            for run in sorted(r.check_runs.values(), key=lambda c: c.id)
            if run.head_sha == sha
        }
        return [
            name for name in r.required_checks if latest.get(name) not in ("success", "neutral", "skipped")
        ]

    def head_has_failing_checks(self, r: SimRepo, sha: str) -> bool:
        bad = {"failure", "timed_out", "cancelled", "action_required"}
        return any(run.head_sha == sha and run.conclusion in bad for run in r.check_runs.values())

    def render_pull(self, r: SimRepo, p: SimPull, webhook: bool = False) -> dict[str, Any]:
        """The full pull request. With ``lazy_mergeability`` set, the first REST answer after the head or
        base moved (and webhooks until then) say ``mergeable: null`` / ``"unknown"`` like GitHub."""
        with self.lock:
            self.refresh_pull(r, p)
            stats = self.pull_stats(r, p)
            shas = (p.last_base_sha, p.last_head_sha)
            if self.lazy_mergeability and p.state == "open" and p.mergeability_seen != shas:
                if not webhook:
                    p.mergeability_seen = shas
                stats |= {"mergeable": None, "rebaseable": None, "mergeable_state": "unknown"}
            return render.pull(p, r, self.base_url, r.issues[p.number], stats)

    def pull_event_object(self, r: SimRepo, number: int) -> dict[str, Any]:
        return self.render_pull(r, self.get_pull(r, number), webhook=True)

    def emit_pull_event(
        self,
        r: SimRepo,
        p: SimPull,
        action: str,
        sender: SimUser,
        sync: bool,
        extra: dict[str, Any] | None = None,
    ) -> list[Delivery]:
        with self.lock:
            payload = self.event_base(r, action, sender) | {
                "number": p.number,
                "pull_request": self.render_pull(r, p, webhook=True),
            }
            payload |= extra or {}
            if not sync:
                return self.emit(r.owner, "pull_request", payload, sync=False)
        return self.emit(r.owner, "pull_request", payload, sync=True)

    # ----------------------------------------------------------------- create / update / list
    def create_pull(
        self, r: SimRepo, fields: dict[str, Any], author: SimUser, via_app_id: int | None
    ) -> SimPull:
        title, head, base = fields.get("title"), fields.get("head"), fields.get("base")
        missing = [name for name, value in (("title", title), ("head", head), ("base", base)) if not value]
        if missing:
            raise validation_failed(
                [{"resource": "PullRequest", "field": name, "code": "missing_field"} for name in missing]
            )
        head_text, base_ref = str(head), str(base)
        head_owner, _, head_ref = head_text.rpartition(":")
        if head_owner and head_owner.lower() != r.owner.login.lower():
            raise validation_failed([{"resource": "PullRequest", "field": "head", "code": "invalid"}])
        with self.lock:
            head_sha = gitrepo.branch_sha(r.path, head_ref)
            base_sha = gitrepo.branch_sha(r.path, base_ref)
            if base_sha is None:
                raise validation_failed([{"resource": "PullRequest", "field": "base", "code": "invalid"}])
            if head_sha is None:
                raise validation_failed([{"resource": "PullRequest", "field": "head", "code": "invalid"}])
            for other in r.pulls.values():
                if other.state == "open" and other.head_ref == head_ref and other.base_ref == base_ref:
                    raise validation_failed(
                        [
                            {
                                "resource": "PullRequest",
                                "code": "custom",
                                "message": f"A pull request already exists for {r.owner.login}:{head_ref}.",
                            }
                        ]
                    )
            if not gitrepo.commits_between(r.path, base_sha, head_sha):
                raise validation_failed(
                    [
                        {
                            "resource": "PullRequest",
                            "code": "custom",
                            "message": f"No commits between {base_ref} and {head_ref}",
                        }
                    ]
                )
            number = r.next_number
            r.next_number += 1
            iid, pid = self.new_id(), self.new_id()
            body = fields.get("body")
            r.issues[number] = SimIssue(
                number=number,
                id=iid,
                node_id=node_id("PR_I", iid),
                title=str(title),
                body=body,
                user=author,
                is_pull=True,
            )
            pull = SimPull(
                number=number,
                id=pid,
                node_id=node_id("PR", pid),
                title=str(title),
                body=body,
                head_ref=head_ref,
                base_ref=base_ref,
                user=author,
                draft=bool(fields.get("draft")),
                last_head_sha=head_sha,
                last_base_sha=base_sha,
                via_app_id=via_app_id,
            )
            r.pulls[number] = pull
            self.emit_pull_event(r, pull, "opened", author, sync=False)
            return pull

    def update_pull(self, r: SimRepo, number: int, fields: dict[str, Any], actor: SimUser) -> SimPull:
        with self.lock:
            p = self.get_pull(r, number)
            issue = r.issues[number]
            self.refresh_pull(r, p)
            changes: dict[str, Any] = {}
            if fields.get("title") is not None and fields["title"] != p.title:
                changes["title"] = {"from": p.title}
                p.title = issue.title = str(fields["title"])
            if "body" in fields and fields["body"] != p.body:
                changes["body"] = {"from": p.body or ""}
                p.body = issue.body = fields["body"]
            if fields.get("base") is not None and fields["base"] != p.base_ref:
                new_base = str(fields["base"])
                sha = gitrepo.branch_sha(r.path, new_base)
                if sha is None:
                    raise validation_failed([{"resource": "PullRequest", "field": "base", "code": "invalid"}])
                changes["base"] = {"ref": {"from": p.base_ref}, "sha": {"from": p.last_base_sha}}
                p.base_ref, p.last_base_sha = new_base, sha
            state = fields.get("state")
            if state is not None and state not in ("open", "closed"):
                raise validation_failed([{"resource": "PullRequest", "field": "state", "code": "invalid"}])
            p.updated_at = issue.updated_at = now()
            if changes:
                self.emit_pull_event(r, p, "edited", actor, sync=False, extra={"changes": changes})
            if state == "closed" and p.state == "open":
                self.close_pull(r, p, actor)
            elif state == "open" and p.state == "closed" and not p.merged:
                if gitrepo.branch_sha(r.path, p.head_ref) is None:
                    raise validation_failed(
                        [{"resource": "PullRequest", "field": "state", "code": "invalid"}]
                    )
                p.state, p.closed_at, p.frozen_stats = "open", None, None
                issue.state, issue.closed_at = "open", None
                self.emit_pull_event(r, p, "reopened", actor, sync=False)
            return p

    def close_pull(self, r: SimRepo, p: SimPull, actor: SimUser, sync: bool = False) -> list[Delivery]:
        with self.lock:
            self.refresh_pull(r, p)
            p.frozen_stats = self.pull_stats(r, p) | {
                "mergeable": None,
                "rebaseable": None,
                "mergeable_state": "unknown",
            }
            p.state, p.closed_at, p.updated_at = "closed", now(), now()
            issue = r.issues[p.number]
            issue.state, issue.closed_at, issue.closed_by, issue.updated_at = (
                "closed",
                p.closed_at,
                actor,
                now(),
            )
            if not sync:
                return self.emit_pull_event(r, p, "closed", actor, sync=False)
        return self.emit_pull_event(r, p, "closed", actor, sync=True)

    def list_pulls(
        self, r: SimRepo, state: str, head: str | None, base: str | None, direction: str = "desc"
    ) -> list[SimPull]:
        with self.lock:
            found = []
            for p in r.pulls.values():
                if state != "all" and p.state != state:
                    continue
                if head is not None:
                    owner, _, ref = head.rpartition(":")
                    if (owner and owner.lower() != r.owner.login.lower()) or ref != p.head_ref:
                        continue
                if base is not None and p.base_ref != base:
                    continue
                found.append(p)
            found.sort(key=lambda p: p.number, reverse=direction != "asc")
            return found

    def pull_files(self, r: SimRepo, p: SimPull) -> list[gitrepo.FileChange]:
        with self.lock:
            self.refresh_pull(r, p)
            mb = gitrepo.merge_base(r.path, p.last_base_sha, p.last_head_sha) or p.last_base_sha
            return gitrepo.diff_files(r.path, mb, p.last_head_sha)

    def set_draft(self, r: SimRepo, p: SimPull, draft: bool, actor: SimUser) -> SimPull:
        with self.lock:
            if p.state != "open":
                raise ApiError(422, "Pull request is closed")
            if p.draft != draft:
                p.draft = draft
                p.updated_at = now()
                action = "converted_to_draft" if draft else "ready_for_review"
                self.emit_pull_event(r, p, action, actor, sync=False)
            return p

    # ----------------------------------------------------------------- refs
    def on_refs_changed(
        self,
        r: SimRepo,
        updates: list[tuple[str, str | None, str | None]],
        actor: SimUser,
        sync: bool = False,
    ) -> list[Delivery]:
        """After refs changed (a git push, a merge, the git refs API): a ``push`` event per branch, then
        ``synchronize`` open pull requests whose head moved and close those whose head went. ``sync``: post
        now (a person's action), else queue behind the events before (an App's call or push)."""
        out: list[Delivery] = []
        with self.lock:
            r.pushed_at = now()
            refs_before = gitrepo.list_refs(r.path)  # the refs as they were before these updates
            for ref, old, _new in updates:
                if old is None:
                    refs_before.pop(ref, None)
                else:
                    refs_before[ref] = old
            for ref, old, new in updates:
                if not ref.startswith("refs/heads/"):
                    continue
                out += self.emit_push(r, ref, old, new, actor, refs_before, sync=sync)
                branch_name = strip_heads(ref)
                for p in list(r.pulls.values()):
                    if p.state != "open" or p.head_ref != branch_name:
                        continue
                    if new is None:
                        out += self.close_pull(r, p, actor, sync=sync)
                        continue
                    p.updated_at = now()
                    out += self.emit_pull_event(
                        r,
                        p,
                        "synchronize",
                        actor,
                        sync=sync,
                        extra={"before": old or gitrepo.ZERO_SHA, "after": new},
                    )
        return out

    def emit_push(
        self,
        r: SimRepo,
        ref: str,
        old: str | None,
        new: str | None,
        actor: SimUser,
        refs_before: dict[str, str],
        sync: bool,
    ) -> list[Delivery]:
        """GitHub's ``push`` event for one branch that moved from ``old`` to ``new`` (None: absent), to the
        Apps subscribed to it. ``refs_before``: every ref before the change (which commits are new)."""
        with self.lock:
            if not self.recipients(r.owner, "push", r.id):
                return []  # nobody listens: spare the git work
            payload = self.push_payload(r, ref, old, new, actor, refs_before)
            if not sync:
                return self.emit(r.owner, "push", payload, sync=False)
        return self.emit(r.owner, "push", payload, sync=True)

    def push_payload(
        self,
        r: SimRepo,
        ref: str,
        old: str | None,
        new: str | None,
        actor: SimUser,
        refs_before: dict[str, str],
    ) -> dict[str, Any]:
        html = f"{self.base_url}/{r.full_name}"
        default_ref = f"refs/heads/{r.default_branch}"
        base = refs_before.get(default_ref) if ref != default_ref else None
        if new is None:
            shas: list[str] = []
            compare = f"{html}/compare/{(old or gitrepo.ZERO_SHA)[:12]}...{gitrepo.ZERO_SHA[:12]}"
        elif old is None:  # a new branch: its commits since the default branch's head (or all of them)
            shas = gitrepo.commits_excluding(r.path, new, [base] if base else [], PUSH_COMMITS_LIMIT)
            compare = f"{html}/compare/{strip_heads(ref)}" if base else f"{html}/commit/{new}"
        else:
            shas = gitrepo.commits_excluding(r.path, new, [old], PUSH_COMMITS_LIMIT)
            compare = f"{html}/compare/{old[:12]}...{new[:12]}"
        # ``distinct``: a commit no ref held before (not one already pushed elsewhere, e.g. a merged PR's)
        known = [sha for name, sha in refs_before.items() if name != ref] + ([old] if old else [])
        fresh = set(gitrepo.commits_excluding(r.path, new, known)) if new else set()
        usernames = self.push_usernames()

        def rendered(sha: str) -> dict[str, Any]:
            info = gitrepo.commit_info(r.path, sha)
            paths = gitrepo.changed_paths(r.path, info.parents[0] if info.parents else None, sha)
            return render.push_commit(info, paths, sha in fresh, r, self.base_url, usernames)

        commits = [rendered(sha) for sha in shas]
        head_commit = None if new is None else commits[-1] if shas[-1:] == [new] else rendered(new)
        open_issues = sum(1 for i in r.issues.values() if i.state == "open")
        owner_email = self.identity(r.owner).email if r.owner.type == "User" else None
        pusher = self.identity(actor)
        return {
            "ref": ref,
            "before": old or gitrepo.ZERO_SHA,
            "after": new or gitrepo.ZERO_SHA,
            "created": old is None,
            "deleted": new is None,
            "forced": old is not None and new is not None and not gitrepo.is_ancestor(r.path, old, new),
            "base_ref": None,
            "compare": compare,
            "commits": commits,
            "head_commit": head_commit,
            "repository": render.push_repo(r, self.base_url, open_issues, owner_email),
            "pusher": {"name": actor.login, "email": pusher.email},
            "sender": render.user(actor, self.base_url),
        }

    def push_usernames(self) -> dict[str, str]:
        """Commit email (lower case) → GitHub login, for the ``username`` of push payloads' commits."""
        with self.lock:
            known = {GITHUB_IDENTITY.email: "web-flow"}  # GitHub's own commits (merges in the web UI)
            for u in self.users.values():
                known[self.identity(u).email.lower()] = u.login
                if u.email:
                    known[u.email.lower()] = u.login
            return known

    def delete_branch_ref(self, r: SimRepo, ref: str, actor: SimUser) -> None:
        full = ref if ref.startswith("refs/") else f"refs/{ref}"
        with self.lock:
            old = gitrepo.resolve(r.path, full)
            if old is None or full not in gitrepo.list_refs(r.path):
                raise ApiError(422, "Reference does not exist")
            gitrepo.delete_ref(r.path, full)
            self.on_refs_changed(r, [(full, old, None)], actor)

    # ----------------------------------------------------------------- merging
    def merge_pull(
        self,
        r: SimRepo,
        number: int,
        actor: SimUser,
        sha: str | None,
        method: str,
        commit_title: str | None,
        commit_message: str | None,
    ) -> str:
        if method not in ("merge", "squash", "rebase"):
            raise validation_failed([{"resource": "PullRequest", "field": "merge_method", "code": "invalid"}])
        with self.lock:
            p = self.get_pull(r, number)
            self.refresh_pull(r, p)
            if p.merged or p.state != "open":
                raise ApiError(405, "Pull Request is not mergeable")
            if p.draft:
                raise ApiError(405, "Pull Request is still a draft")
            if sha is not None and sha != p.last_head_sha:
                raise ApiError(409, "Head branch was modified. Review and try the merge again.")
            base, head = p.last_base_sha, p.last_head_sha
            tree = gitrepo.trial_merge(r.path, base, head)
            if tree is None:
                raise ApiError(405, "Pull Request is not mergeable")
            blocked = self.failing_required(r, head)
            if blocked:
                raise ApiError(405, f'Required status check "{blocked[0]}" is failing.')
            author = self.identity(actor)
            if method == "merge":
                title = commit_title or f"Merge pull request #{p.number} from {r.owner.login}/{p.head_ref}"
                message = f"{title}\n\n{commit_message if commit_message is not None else p.title}"
                new = gitrepo.commit_tree(r.path, tree, [base, head], message, author, GITHUB_IDENTITY)
            elif method == "squash":
                title = commit_title or f"{p.title} (#{p.number})"
                message = f"{title}\n\n{commit_message}" if commit_message else title
                new = gitrepo.commit_tree(
                    r.path, tree, [base], message, self.identity(p.user), GITHUB_IDENTITY
                )
            else:
                mb = gitrepo.merge_base(r.path, base, head) or base
                rebased = gitrepo.rebase_onto(r.path, base, mb, head, GITHUB_IDENTITY)
                if rebased is None:
                    raise ApiError(405, "Pull Request is not mergeable")
                new = rebased
            stats = self.pull_stats(r, p)
            gitrepo.update_ref(r.path, f"refs/heads/{p.base_ref}", new, base)
            p.frozen_stats = stats | {"mergeable": None, "rebaseable": None, "mergeable_state": "unknown"}
            p.merged, p.merged_at, p.merged_by, p.merge_commit_sha = True, now(), actor, new
            p.state, p.closed_at, p.updated_at = "closed", p.merged_at, now()
            issue = r.issues[p.number]
            issue.state, issue.closed_at, issue.closed_by, issue.updated_at = (
                "closed",
                p.closed_at,
                actor,
                now(),
            )
            r.pushed_at = now()
            self.emit_pull_event(r, p, "closed", actor, sync=False)
            base_ref = f"refs/heads/{p.base_ref}"
            self.on_refs_changed(r, [(base_ref, base, new)], actor)
            return new

    # ----------------------------------------------------------------- reviews
    def add_review(
        self,
        r: SimRepo,
        number: int,
        reviewer: SimUser,
        state: str,
        body: str,
        commit_id: str | None,
        comments: list[dict[str, Any]],
        sync: bool,
    ) -> tuple[SimReview, list[Delivery]]:
        if state not in REVIEW_STATES:
            raise validation_failed([{"resource": "PullRequestReview", "field": "event", "code": "invalid"}])
        if state in ("CHANGES_REQUESTED", "COMMENTED") and not body and not comments:
            raise validation_failed(
                [{"resource": "PullRequestReview", "field": "body", "code": "missing_field"}],
            )
        with self.lock:
            p = self.get_pull(r, number)
            if reviewer is p.user and state in SELF_REVIEW_REFUSED:
                # GitHub's answer (errors are plain strings here: ``validation-error-simple``)
                raise ApiError(422, "Unprocessable Entity", errors=[SELF_REVIEW_REFUSED[state]])
            self.refresh_pull(r, p)
            sha = commit_id or p.last_head_sha
            rid = self.new_id()
            review = SimReview(
                id=rid, node_id=node_id("PRR", rid), user=reviewer, state=state, body=body, commit_id=sha
            )
            patches = {c.filename: c.patch for c in self.pull_files(r, p)} if comments else {}
            for spec in comments:
                path, line = str(spec["path"]), int(spec["line"])
                if path not in patches:
                    raise validation_failed(
                        [{"resource": "PullRequestReviewComment", "field": "path", "code": "invalid"}],
                        message="Unprocessable Entity",
                    )
                cid = self.new_id()
                created = SimReviewComment(
                    id=cid,
                    node_id=node_id("PRRC", cid),
                    review_id=rid,
                    path=path,
                    line=line,
                    body=str(spec.get("body", "")),
                    user=reviewer,
                    commit_id=sha,
                    diff_hunk=diff_hunk(patches[path], line),
                )
                p.review_comments.append(created)
                review.comment_ids.append(cid)
            p.reviews.append(review)
            payload = self.event_base(r, "submitted", reviewer) | {
                "review": render.review(review, p, r, self.base_url, webhook=True),
                "pull_request": self.render_pull(r, p, webhook=True),
            }
            if not sync:
                return review, self.emit(r.owner, "pull_request_review", payload, sync=False)
        return review, self.emit(r.owner, "pull_request_review", payload, sync=True)


def diff_hunk(patch: str, line: int) -> str:
    """The hunk of ``patch`` up to the new-file ``line`` (GitHub's ``diff_hunk`` for a line comment)."""
    hunks = re.split(r"(?m)^(?=@@ )", patch)
    for hunk in hunks:
        match = re.match(r"@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@", hunk)
        if match is None:
            continue
        start, length = int(match.group(1)), int(match.group(2) or "1")
        if not start <= line < start + max(length, 1):
            continue
        lines = hunk.splitlines()
        current = start - 1
        for index, text in enumerate(lines[1:], start=1):
            if not text.startswith("-"):
                current += 1
            if current == line:
                return "\n".join(lines[: index + 1])
        return hunk.rstrip("\n")
    return hunks[-1].rstrip("\n") if hunks and hunks[-1] else f"@@ -0,0 +{line},1 @@"
