"""JSON shapes of GitHub's REST objects (and the objects inside webhook payloads), built from the state.

Every function takes ``base`` (the simulator's public URL, e.g. ``http://127.0.0.1:PORT``); API URLs are
``{base}/api/v3/...`` and HTML URLs ``{base}/...`` like GitHub Enterprise Server.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from app.dev.simulator.gitrepo import CommitInfo, FileChange
from app.dev.simulator.state import (
    REACTIONS,
    SimApp,
    SimCheckRun,
    SimCheckSuite,
    SimComment,
    SimInstallation,
    SimIssue,
    SimLabel,
    SimPull,
    SimReaction,
    SimRepo,
    SimReview,
    SimReviewComment,
    SimUser,
    iso,
    now,
)

JSON = dict[str, Any]
ALL_PERMISSIONS = {"admin": True, "maintain": True, "push": True, "triage": True, "pull": True}


def api(base: str) -> str:
    return f"{base}/api/v3"


def user(u: SimUser, base: str) -> JSON:
    url = f"{api(base)}/users/{u.login}"
    return {
        "login": u.login,
        "id": u.id,
        "node_id": u.node_id,
        "avatar_url": f"{base}/avatars/u/{u.id}",
        "gravatar_id": "",
        "url": url,
        "html_url": f"{base}/{u.login}",
        "followers_url": f"{url}/followers",
        "following_url": f"{url}/following{{/other_user}}",
        "gists_url": f"{url}/gists{{/gist_id}}",
        "starred_url": f"{url}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{url}/subscriptions",
        "organizations_url": f"{url}/orgs",
        "repos_url": f"{url}/repos",
        "events_url": f"{url}/events{{/privacy}}",
        "received_events_url": f"{url}/received_events",
        "type": u.type,
        "user_view_type": "public",
        "site_admin": False,
    }


def public_user(u: SimUser, base: str, public_repos: int) -> JSON:
    return user(u, base) | {
        "name": u.name,
        "company": None,
        "blog": "",
        "location": None,
        "email": u.email,
        "hireable": None,
        "bio": None,
        "twitter_username": None,
        "public_repos": public_repos,
        "public_gists": 0,
        "followers": 0,
        "following": 0,
        "created_at": iso(u.created_at),
        "updated_at": iso(u.created_at),
    }


def repo(r: SimRepo, base: str, permissions: dict[str, bool] | None = None, open_issues: int = 0) -> JSON:
    url = f"{api(base)}/repos/{r.full_name}"
    html = f"{base}/{r.full_name}"
    out: JSON = {
        "id": r.id,
        "node_id": r.node_id,
        "name": r.name,
        "full_name": r.full_name,
        "private": r.private,
        "owner": user(r.owner, base),
        "html_url": html,
        "description": r.description,
        "fork": False,
        "url": url,
        "forks_url": f"{url}/forks",
        "keys_url": f"{url}/keys{{/key_id}}",
        "collaborators_url": f"{url}/collaborators{{/collaborator}}",
        "teams_url": f"{url}/teams",
        "hooks_url": f"{url}/hooks",
        "issue_events_url": f"{url}/issues/events{{/number}}",
        "events_url": f"{url}/events",
        "assignees_url": f"{url}/assignees{{/user}}",
        "branches_url": f"{url}/branches{{/branch}}",
        "tags_url": f"{url}/tags",
        "blobs_url": f"{url}/git/blobs{{/sha}}",
        "git_tags_url": f"{url}/git/tags{{/sha}}",
        "git_refs_url": f"{url}/git/refs{{/sha}}",
        "trees_url": f"{url}/git/trees{{/sha}}",
        "statuses_url": f"{url}/statuses/{{sha}}",
        "languages_url": f"{url}/languages",
        "stargazers_url": f"{url}/stargazers",
        "contributors_url": f"{url}/contributors",
        "subscribers_url": f"{url}/subscribers",
        "subscription_url": f"{url}/subscription",
        "commits_url": f"{url}/commits{{/sha}}",
        "git_commits_url": f"{url}/git/commits{{/sha}}",
        "comments_url": f"{url}/comments{{/number}}",
        "issue_comment_url": f"{url}/issues/comments{{/number}}",
        "contents_url": f"{url}/contents/{{+path}}",
        "compare_url": f"{url}/compare/{{base}}...{{head}}",
        "merges_url": f"{url}/merges",
        "archive_url": f"{url}/{{archive_format}}{{/ref}}",
        "downloads_url": f"{url}/downloads",
        "issues_url": f"{url}/issues{{/number}}",
        "pulls_url": f"{url}/pulls{{/number}}",
        "milestones_url": f"{url}/milestones{{/number}}",
        "notifications_url": f"{url}/notifications{{?since,all,participating}}",
        "labels_url": f"{url}/labels{{/name}}",
        "releases_url": f"{url}/releases{{/id}}",
        "deployments_url": f"{url}/deployments",
        "created_at": iso(r.created_at),
        "updated_at": iso(r.pushed_at),
        "pushed_at": iso(r.pushed_at),
        "git_url": f"{base.replace('http://', 'git://').replace('https://', 'git://')}/{r.full_name}.git",
        "ssh_url": f"git@{base.split('://', 1)[-1]}:{r.full_name}.git",
        "clone_url": f"{base}/{r.full_name}.git",
        "svn_url": html,
        "homepage": None,
        "size": 0,
        "stargazers_count": 0,
        "watchers_count": 0,
        "language": None,
        "has_issues": True,
        "has_projects": True,
        "has_downloads": True,
        "has_wiki": True,
        "has_pages": False,
        "has_discussions": False,
        "forks_count": 0,
        "mirror_url": None,
        "archived": False,
        "disabled": False,
        "open_issues_count": open_issues,
        "license": None,
        "allow_forking": True,
        "is_template": False,
        "web_commit_signoff_required": False,
        "topics": [],
        "visibility": "private" if r.private else "public",
        "forks": 0,
        "open_issues": open_issues,
        "watchers": 0,
        "default_branch": r.default_branch,
        "allow_squash_merge": True,
        "allow_merge_commit": True,
        "allow_rebase_merge": True,
        "allow_auto_merge": False,
        "delete_branch_on_merge": False,
        "allow_update_branch": False,
        "use_squash_pr_title_as_default": False,
        "squash_merge_commit_title": "COMMIT_OR_PR_TITLE",
        "squash_merge_commit_message": "COMMIT_MESSAGES",
        "merge_commit_title": "MERGE_MESSAGE",
        "merge_commit_message": "PR_TITLE",
        "network_count": 0,
        "subscribers_count": 0,
    }
    if permissions is not None:
        out["permissions"] = permissions
    return out


def repo_brief(r: SimRepo) -> JSON:
    return {"id": r.id, "node_id": r.node_id, "name": r.name, "full_name": r.full_name, "private": r.private}


def label(lbl: SimLabel, r: SimRepo, base: str) -> JSON:
    return {
        "id": lbl.id,
        "node_id": lbl.node_id,
        "url": f"{api(base)}/repos/{r.full_name}/labels/{quote(lbl.name, safe='')}",
        "name": lbl.name,
        "color": lbl.color,
        "default": False,
        "description": lbl.description,
        "archived_at": None,
        "archived_by": None,
    }


def reaction_rollup(reactions: list[SimReaction], url: str) -> JSON:
    out: JSON = {"url": url, "total_count": len(reactions)}
    for content in REACTIONS:
        out[content] = sum(1 for rx in reactions if rx.content == content)
    return out


def reaction(rx: SimReaction, base: str) -> JSON:
    return {
        "id": rx.id,
        "node_id": rx.node_id,
        "user": user(rx.user, base),
        "content": rx.content,
        "created_at": iso(rx.created_at),
    }


def author_association(r: SimRepo, u: SimUser) -> str:
    if u.login == r.owner.login:
        return "OWNER"
    if r.collaborators.get(u.login, "none") != "none":
        return "COLLABORATOR"
    return "NONE"


def integration(app: SimApp, base: str, installations_count: int | None = None) -> JSON:
    out: JSON = {
        "id": app.id,
        "slug": app.slug,
        "node_id": app.node_id,
        "client_id": app.client_id,
        "owner": user(app.owner, base),
        "name": app.name,
        "description": f"{app.name} (simulated)",
        "external_url": f"{base}/apps/{app.slug}",
        "html_url": f"{base}/apps/{app.slug}",
        "created_at": iso(app.created_at),
        "updated_at": iso(app.created_at),
        "permissions": dict(app.permissions),
        "events": list(app.events),
    }
    if installations_count is not None:
        out["installations_count"] = installations_count
    return out


def installation(inst: SimInstallation, app: SimApp, base: str) -> JSON:
    return {
        "id": inst.id,
        "client_id": app.client_id,
        "account": user(inst.account, base),
        "repository_selection": "all" if inst.repository_ids is None else "selected",
        "access_tokens_url": f"{api(base)}/app/installations/{inst.id}/access_tokens",
        "repositories_url": f"{api(base)}/installation/repositories",
        "html_url": f"{base}/settings/installations/{inst.id}",
        "app_id": app.id,
        "app_slug": app.slug,
        "target_id": inst.account.id,
        "target_type": inst.account.type,
        "permissions": dict(app.permissions),
        "events": list(app.events),
        "created_at": iso(inst.created_at),
        "updated_at": iso(inst.created_at),
        "single_file_name": None,
        "has_multiple_single_files": False,
        "single_file_paths": [],
        "suspended_by": user(inst.suspended_by, base) if inst.suspended_by else None,
        "suspended_at": iso(inst.suspended_at),
    }


def issue(
    i: SimIssue,
    r: SimRepo,
    base: str,
    pull: SimPull | None = None,
    app: SimApp | None = None,
) -> JSON:
    url = f"{api(base)}/repos/{r.full_name}/issues/{i.number}"
    html_kind = "pull" if pull is not None else "issues"
    out: JSON = {
        "url": url,
        "repository_url": f"{api(base)}/repos/{r.full_name}",
        "labels_url": f"{url}/labels{{/name}}",
        "comments_url": f"{url}/comments",
        "events_url": f"{url}/events",
        "html_url": f"{base}/{r.full_name}/{html_kind}/{i.number}",
        "id": i.id,
        "node_id": i.node_id,
        "number": i.number,
        "title": i.title,
        "user": user(i.user, base),
        "labels": [label(r.labels[name], r, base) for name in i.labels],
        "state": i.state,
        "locked": False,
        "assignee": None,
        "assignees": [],
        "milestone": None,
        "comments": len(i.comment_ids),
        "created_at": iso(i.created_at),
        "updated_at": iso(i.updated_at),
        "closed_at": iso(i.closed_at),
        "author_association": author_association(r, i.user),
        "active_lock_reason": None,
        "body": i.body,
        "closed_by": user(i.closed_by, base) if i.closed_by else None,
        "reactions": reaction_rollup(i.reactions, f"{url}/reactions"),
        "timeline_url": f"{url}/timeline",
        "performed_via_github_app": integration(app, base) if app else None,
        "state_reason": i.state_reason,
    }
    if pull is not None:
        pulls_url = f"{api(base)}/repos/{r.full_name}/pulls/{i.number}"
        out["draft"] = pull.draft
        out["pull_request"] = {
            "url": pulls_url,
            "html_url": f"{base}/{r.full_name}/pull/{i.number}",
            "diff_url": f"{base}/{r.full_name}/pull/{i.number}.diff",
            "patch_url": f"{base}/{r.full_name}/pull/{i.number}.patch",
            "merged_at": iso(pull.merged_at),
        }
    return out


def comment(c: SimComment, r: SimRepo, base: str, app: SimApp | None) -> JSON:
    url = f"{api(base)}/repos/{r.full_name}/issues/comments/{c.id}"
    issue_kind = "pull" if r.issues[c.issue_number].is_pull else "issues"
    return {
        "url": url,
        "html_url": f"{base}/{r.full_name}/{issue_kind}/{c.issue_number}#issuecomment-{c.id}",
        "issue_url": f"{api(base)}/repos/{r.full_name}/issues/{c.issue_number}",
        "id": c.id,
        "node_id": c.node_id,
        "user": user(c.user, base),
        "created_at": iso(c.created_at),
        "updated_at": iso(c.updated_at),
        "author_association": author_association(r, c.user),
        "body": c.body,
        "reactions": reaction_rollup(c.reactions, f"{url}/reactions"),
        "performed_via_github_app": integration(app, base) if app else None,
    }


def _commit_user(name: str, email: str, date: str) -> JSON:
    return {"name": name, "email": email, "date": date}


def commit(info: CommitInfo, r: SimRepo, base: str) -> JSON:
    url = f"{api(base)}/repos/{r.full_name}/commits/{info.sha}"
    return {
        "sha": info.sha,
        "node_id": f"C_{info.sha[:20]}",
        "url": url,
        "html_url": f"{base}/{r.full_name}/commit/{info.sha}",
        "comments_url": f"{url}/comments",
        "commit": {
            "url": f"{api(base)}/repos/{r.full_name}/git/commits/{info.sha}",
            "author": _commit_user(info.author_name, info.author_email, info.author_date),
            "committer": _commit_user(info.committer_name, info.committer_email, info.committer_date),
            "message": info.message,
            "comment_count": 0,
            "tree": {"sha": info.tree, "url": f"{api(base)}/repos/{r.full_name}/git/trees/{info.tree}"},
            "verification": {
                "verified": False,
                "reason": "unsigned",
                "payload": None,
                "signature": None,
                "verified_at": None,
            },
        },
        "author": None,
        "committer": None,
        "parents": [
            {
                "sha": p,
                "url": f"{api(base)}/repos/{r.full_name}/commits/{p}",
                "html_url": f"{base}/{r.full_name}/commit/{p}",
            }
            for p in info.parents
        ],
    }


def commit_detail(info: CommitInfo, changes: list[FileChange], r: SimRepo, base: str) -> JSON:
    """``GET /repos/{o}/{r}/commits/{ref}``: the commit, its stats and files (against its 1st parent)."""
    additions = sum(c.additions for c in changes)
    deletions = sum(c.deletions for c in changes)
    return commit(info, r, base) | {
        "stats": {"additions": additions, "deletions": deletions, "total": additions + deletions},
        "files": [diff_entry(c, r, base, info.sha) for c in changes],
    }


def branch(name: str, info: CommitInfo, r: SimRepo, base: str) -> JSON:
    url = f"{api(base)}/repos/{r.full_name}/branches/{name}"
    return {
        "name": name,
        "commit": commit(info, r, base),
        "_links": {"self": url, "html": f"{base}/{r.full_name}/tree/{name}"},
        "protected": False,
        "protection": {
            "enabled": False,
            "required_status_checks": {"enforcement_level": "off", "contexts": [], "checks": []},
        },
        "protection_url": f"{url}/protection",
    }


def push_repo(r: SimRepo, base: str, open_issues: int, owner_email: str | None) -> JSON:
    """The ``repository`` of a ``push`` payload: GitHub's older shape (times of creation and push as unix
    seconds, the owner with a name and email, ``stargazers``, ``master_branch``)."""
    out = repo(r, base, open_issues=open_issues)
    out["owner"] = {"name": r.owner.login, "email": owner_email} | out["owner"]
    out |= {
        "created_at": int(r.created_at.timestamp()),
        "pushed_at": int(r.pushed_at.timestamp()),
        "stargazers": 0,
        "master_branch": r.default_branch,
        "custom_properties": {},
    }
    if r.owner.type == "Organization":
        out["organization"] = r.owner.login
    return out


def push_commit(
    info: CommitInfo,
    paths: tuple[list[str], list[str], list[str]],
    distinct: bool,
    r: SimRepo,
    base: str,
    usernames: dict[str, str],
) -> JSON:
    """A commit in a ``push`` payload (``username``: the GitHub login an email belongs to, when known)."""

    def person(name: str, email: str) -> JSON:
        login = usernames.get(email.lower())
        return {"name": name, "email": email} | ({"username": login} if login else {})

    added, removed, modified = paths
    return {
        "id": info.sha,
        "tree_id": info.tree,
        "distinct": distinct,
        "message": info.message,
        "timestamp": info.author_date,
        "url": f"{base}/{r.full_name}/commit/{info.sha}",
        "author": person(info.author_name, info.author_email),
        "committer": person(info.committer_name, info.committer_email),
        "added": added,
        "removed": removed,
        "modified": modified,
    }


def git_ref(ref: str, sha: str, r: SimRepo, base: str) -> JSON:
    return {
        "ref": ref,
        "node_id": f"REF_{r.id}_{ref}",
        "url": f"{api(base)}/repos/{r.full_name}/git/{ref}",
        "object": {"type": "commit", "sha": sha, "url": f"{api(base)}/repos/{r.full_name}/git/commits/{sha}"},
    }


def content_links(r: SimRepo, base: str, path: str, ref: str, sha: str, kind: str) -> JSON:
    url = f"{api(base)}/repos/{r.full_name}/contents/{path}?ref={ref}"
    git_url = f"{api(base)}/repos/{r.full_name}/git/{'trees' if kind == 'dir' else 'blobs'}/{sha}"
    html = f"{base}/{r.full_name}/{'tree' if kind == 'dir' else 'blob'}/{ref}/{path}"
    return {
        "url": url,
        "git_url": git_url,
        "html_url": html,
        "download_url": None if kind == "dir" else f"{base}/{r.full_name}/raw/{ref}/{path}",
        "_links": {"self": url, "git": git_url, "html": html},
    }


def content_file(r: SimRepo, base: str, path: str, ref: str, sha: str, data: bytes) -> JSON:
    import base64
    import textwrap

    encoded = base64.b64encode(data).decode()
    return {
        "type": "file",
        "encoding": "base64",
        "size": len(data),
        "name": path.rsplit("/", 1)[-1],
        "path": path,
        "content": "\n".join(textwrap.wrap(encoded, 60)) + "\n" if encoded else "",
        "sha": sha,
    } | content_links(r, base, path, ref, sha, "file")


def content_entry(r: SimRepo, base: str, path: str, ref: str, kind: str, sha: str, size: int) -> JSON:
    mapped = {"blob": "file", "tree": "dir", "commit": "submodule"}.get(kind, "file")
    return {
        "type": mapped,
        "size": size,
        "name": path.rsplit("/", 1)[-1],
        "path": path,
        "sha": sha,
    } | content_links(r, base, path, ref, sha, mapped)


def pull_ref(label_owner: SimUser, ref: str, sha: str, r: SimRepo, base: str) -> JSON:
    return {
        "label": f"{label_owner.login}:{ref}",
        "ref": ref,
        "sha": sha,
        "user": user(label_owner, base),
        "repo": repo(r, base),
    }


def pull(
    p: SimPull,
    r: SimRepo,
    base: str,
    issue_obj: SimIssue,
    stats: dict[str, Any],
) -> JSON:
    """Full pull-request object; ``stats`` has commits, additions, deletions, changed_files, mergeable,
    rebaseable and mergeable_state."""
    url = f"{api(base)}/repos/{r.full_name}/pulls/{p.number}"
    issue_url = f"{api(base)}/repos/{r.full_name}/issues/{p.number}"
    html = f"{base}/{r.full_name}/pull/{p.number}"
    statuses = f"{api(base)}/repos/{r.full_name}/statuses/{p.last_head_sha}"
    return {
        "url": url,
        "id": p.id,
        "node_id": p.node_id,
        "html_url": html,
        "diff_url": f"{html}.diff",
        "patch_url": f"{html}.patch",
        "issue_url": issue_url,
        "commits_url": f"{url}/commits",
        "review_comments_url": f"{url}/comments",
        "review_comment_url": f"{api(base)}/repos/{r.full_name}/pulls/comments{{/number}}",
        "comments_url": f"{issue_url}/comments",
        "statuses_url": statuses,
        "number": p.number,
        "state": p.state,
        "locked": False,
        "title": p.title,
        "user": user(p.user, base),
        "body": p.body,
        "labels": [label(r.labels[name], r, base) for name in issue_obj.labels],
        "milestone": None,
        "active_lock_reason": None,
        "created_at": iso(p.created_at),
        "updated_at": iso(p.updated_at),
        "closed_at": iso(p.closed_at),
        "merged_at": iso(p.merged_at),
        "merge_commit_sha": p.merge_commit_sha,
        "assignee": None,
        "assignees": [],
        "requested_reviewers": [],
        "requested_teams": [],
        "head": pull_ref(r.owner, p.head_ref, p.last_head_sha, r, base),
        "base": pull_ref(r.owner, p.base_ref, p.last_base_sha, r, base),
        "_links": {
            "self": {"href": url},
            "html": {"href": html},
            "issue": {"href": issue_url},
            "comments": {"href": f"{issue_url}/comments"},
            "review_comments": {"href": f"{url}/comments"},
            "review_comment": {"href": f"{api(base)}/repos/{r.full_name}/pulls/comments{{/number}}"},
            "commits": {"href": f"{url}/commits"},
            "statuses": {"href": statuses},
        },
        "author_association": author_association(r, p.user),
        "auto_merge": None,
        "draft": p.draft,
        "merged": p.merged,
        "mergeable": stats["mergeable"],
        "rebaseable": stats["rebaseable"],
        "mergeable_state": stats["mergeable_state"],
        "merged_by": user(p.merged_by, base) if p.merged_by else None,
        "comments": len(issue_obj.comment_ids),
        "review_comments": len(p.review_comments),
        "maintainer_can_modify": False,
        "commits": stats["commits"],
        "additions": stats["additions"],
        "deletions": stats["deletions"],
        "changed_files": stats["changed_files"],
    }


def pull_minimal(p: SimPull, r: SimRepo, base: str) -> JSON:
    repo_min = {"id": r.id, "url": f"{api(base)}/repos/{r.full_name}", "name": r.name}
    return {
        "url": f"{api(base)}/repos/{r.full_name}/pulls/{p.number}",
        "id": p.id,
        "number": p.number,
        "head": {"ref": p.head_ref, "sha": p.last_head_sha, "repo": repo_min},
        "base": {"ref": p.base_ref, "sha": p.last_base_sha, "repo": repo_min},
    }


def diff_entry(change: FileChange, r: SimRepo, base: str, head_sha: str) -> JSON:
    out: JSON = {
        "sha": change.sha or "0" * 40,
        "filename": change.filename,
        "status": change.status,
        "additions": change.additions,
        "deletions": change.deletions,
        "changes": change.additions + change.deletions,
        "blob_url": f"{base}/{r.full_name}/blob/{head_sha}/{change.filename}",
        "raw_url": f"{base}/{r.full_name}/raw/{head_sha}/{change.filename}",
        "contents_url": f"{api(base)}/repos/{r.full_name}/contents/{change.filename}?ref={head_sha}",
        "patch": change.patch,
    }
    if change.previous_filename:
        out["previous_filename"] = change.previous_filename
    return out


def check_suite(
    s: SimCheckSuite, r: SimRepo, base: str, app: SimApp, runs: list[SimCheckRun], pulls: list[JSON]
) -> JSON:
    status, conclusion = suite_status(runs)
    return {
        "id": s.id,
        "node_id": s.node_id,
        "head_branch": s.head_branch,
        "head_sha": s.head_sha,
        "status": status,
        "conclusion": conclusion,
        "url": f"{api(base)}/repos/{r.full_name}/check-suites/{s.id}",
        "before": None,
        "after": s.head_sha,
        "pull_requests": pulls,
        "app": integration(app, base),
        "created_at": iso(s.created_at),
        "updated_at": iso(s.updated_at),
        "latest_check_runs_count": len(runs),
        "check_runs_url": f"{api(base)}/repos/{r.full_name}/check-suites/{s.id}/check-runs",
        "rerequestable": True,
        "runs_rerequestable": False,
    }


def suite_status(runs: list[SimCheckRun]) -> tuple[str, str | None]:
    if not runs or any(run.status != "completed" for run in runs):
        return ("in_progress" if runs else "queued"), None
    order = ["action_required", "cancelled", "timed_out", "failure", "stale", "neutral", "skipped", "success"]
    conclusions = [run.conclusion or "neutral" for run in runs]
    for candidate in order:
        if candidate in conclusions:
            return "completed", candidate
    return "completed", "success"


def check_run(
    run: SimCheckRun, suite: SimCheckSuite, r: SimRepo, base: str, app: SimApp, pulls: list[JSON]
) -> JSON:
    url = f"{api(base)}/repos/{r.full_name}/check-runs/{run.id}"
    return {
        "id": run.id,
        "head_sha": run.head_sha,
        "node_id": run.node_id,
        "external_id": run.external_id or "",
        "url": url,
        "html_url": f"{base}/{r.full_name}/runs/{run.id}",
        "details_url": run.details_url or f"{base}/{r.full_name}/runs/{run.id}",
        "status": run.status,
        "conclusion": run.conclusion,
        "started_at": iso(run.started_at),
        "completed_at": iso(run.completed_at),
        "output": {
            "title": run.output.get("title"),
            "summary": run.output.get("summary"),
            "text": run.output.get("text"),
            "annotations_count": len(run.output.get("annotations") or []),
            "annotations_url": f"{url}/annotations",
        },
        "name": run.name,
        "check_suite": {"id": suite.id},
        "app": integration(app, base),
        "pull_requests": pulls,
    }


def review(rv: SimReview, p: SimPull, r: SimRepo, base: str, webhook: bool = False) -> JSON:
    pull_url = f"{api(base)}/repos/{r.full_name}/pulls/{p.number}"
    html = f"{base}/{r.full_name}/pull/{p.number}#pullrequestreview-{rv.id}"
    return {
        "id": rv.id,
        "node_id": rv.node_id,
        "user": user(rv.user, base),
        "body": rv.body,
        "state": rv.state.lower() if webhook else rv.state,
        "html_url": html,
        "pull_request_url": pull_url,
        "author_association": author_association(r, rv.user),
        "_links": {"html": {"href": html}, "pull_request": {"href": pull_url}},
        "submitted_at": iso(rv.submitted_at),
        "commit_id": rv.commit_id,
    }


def review_comment(c: SimReviewComment, p: SimPull, r: SimRepo, base: str) -> JSON:
    url = f"{api(base)}/repos/{r.full_name}/pulls/comments/{c.id}"
    pull_url = f"{api(base)}/repos/{r.full_name}/pulls/{p.number}"
    html = f"{base}/{r.full_name}/pull/{p.number}#discussion_r{c.id}"
    return {
        "url": url,
        "pull_request_review_id": c.review_id,
        "id": c.id,
        "node_id": c.node_id,
        "diff_hunk": c.diff_hunk,
        "path": c.path,
        "position": 1,
        "original_position": 1,
        "commit_id": c.commit_id,
        "original_commit_id": c.commit_id,
        "user": user(c.user, base),
        "body": c.body,
        "created_at": iso(c.created_at),
        "updated_at": iso(c.created_at),
        "html_url": html,
        "pull_request_url": pull_url,
        "author_association": author_association(r, c.user),
        "_links": {"self": {"href": url}, "html": {"href": html}, "pull_request": {"href": pull_url}},
        "start_line": None,
        "original_start_line": None,
        "start_side": None,
        "line": c.line,
        "original_line": c.line,
        "side": "RIGHT",
        "subject_type": "line",
        "reactions": reaction_rollup([], f"{url}/reactions"),
    }


def timestamp() -> str:
    stamp = iso(now())
    assert stamp is not None
    return stamp
