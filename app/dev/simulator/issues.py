"""Issues, comments, labels and reactions (shared by the REST routes and the human-side Python API)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from app.dev.simulator import render
from app.dev.simulator.core import SimulatorCore, node_id
from app.dev.simulator.errors import ApiError, not_found, validation_failed
from app.dev.simulator.state import (
    REACTIONS,
    Delivery,
    SimComment,
    SimIssue,
    SimLabel,
    SimReaction,
    SimRepo,
    SimUser,
    now,
)

LABEL_COLORS = ("d73a4a", "0075ca", "a2eeef", "7057ff", "008672", "e4e669", "d876e3", "cfd3d7")


class IssueOps(SimulatorCore):
    # ----------------------------------------------------------------- lookups and rendering
    def get_issue(self, r: SimRepo, number: int) -> SimIssue:
        with self.lock:
            found = r.issues.get(number)
            if found is None:
                raise not_found()
            return found

    def get_comment(self, r: SimRepo, comment_id: int) -> SimComment:
        with self.lock:
            found = r.comments.get(comment_id)
            if found is None:
                raise not_found()
            return found

    def render_issue(self, r: SimRepo, i: SimIssue) -> dict[str, Any]:
        with self.lock:
            return render.issue(i, r, self.base_url, r.pulls.get(i.number))

    def render_comment(self, r: SimRepo, c: SimComment) -> dict[str, Any]:
        with self.lock:
            app = self.apps.get(c.via_app_id) if c.via_app_id is not None else None
            return render.comment(c, r, self.base_url, app)

    def repo_payload(self, r: SimRepo) -> dict[str, Any]:
        open_issues = sum(1 for i in r.issues.values() if i.state == "open")
        return render.repo(r, self.base_url, open_issues=open_issues)

    def event_base(self, r: SimRepo, action: str, sender: SimUser) -> dict[str, Any]:
        return {
            "action": action,
            "repository": self.repo_payload(r),
            "sender": render.user(sender, self.base_url),
        }

    def pull_event_object(self, r: SimRepo, number: int) -> dict[str, Any]:
        """The ``pull_request`` object for a webhook payload (overridden by the pull-request ops)."""
        raise NotImplementedError

    # ----------------------------------------------------------------- issues
    def open_issue(
        self,
        r: SimRepo,
        title: str,
        body: str | None,
        author: SimUser,
        sync: bool,
        labels: list[str] | None = None,
    ) -> SimIssue:
        """Open an issue (``issues.opened``, then ``issues.labeled`` per label given at creation)."""
        with self.lock:
            number = r.next_number
            r.next_number += 1
            iid = self.new_id()
            issue = SimIssue(
                number=number, id=iid, node_id=node_id("I", iid), title=title, body=body, user=author
            )
            r.issues[number] = issue
            created = [self.ensure_label(r, name) for name in labels or []]
            for lbl in created:
                if lbl.name not in issue.labels:
                    issue.labels.append(lbl.name)
            events = [
                ("issues", self.event_base(r, "opened", author) | {"issue": self.render_issue(r, issue)})
            ]
            events += [self.label_event(r, issue, "labeled", lbl, author) for lbl in created]
            if not sync:
                for event, payload in events:
                    self.emit(r.owner, event, payload, sync=False)
        if sync:
            for event, payload in events:
                self.emit(r.owner, event, payload, sync=True)
        return issue

    def create_issue_from_fields(
        self, r: SimRepo, fields: dict[str, Any], author: SimUser, may_label: bool
    ) -> SimIssue:
        """``POST /repos/{o}/{r}/issues``; labels are silently dropped unless the author may triage."""
        title = fields.get("title")
        if title is None or (isinstance(title, str) and not title.strip()):
            raise validation_failed([{"resource": "Issue", "field": "title", "code": "missing_field"}])
        if not isinstance(title, str | int):
            raise validation_failed([{"resource": "Issue", "field": "title", "code": "invalid"}])
        body = fields.get("body")
        if body is not None and not isinstance(body, str):
            raise validation_failed([{"resource": "Issue", "field": "body", "code": "invalid"}])
        raw_labels = fields.get("labels") or []
        if not isinstance(raw_labels, list):
            raise validation_failed([{"resource": "Issue", "field": "labels", "code": "invalid"}])
        names = [str(item["name"]) if isinstance(item, dict) else str(item) for item in raw_labels]
        if any(not name.strip() for name in names):
            raise validation_failed([{"resource": "Label", "field": "name", "code": "invalid"}])
        return self.open_issue(r, str(title), body, author, sync=False, labels=names if may_label else [])

    def list_issues(self, r: SimRepo, query: dict[str, str]) -> list[SimIssue]:
        """Issues and pull requests of a repository filtered like ``GET /repos/{o}/{r}/issues``."""
        state = query.get("state") or "open"
        if state not in ("open", "closed", "all"):
            raise validation_failed([{"resource": "Issue", "field": "state", "code": "invalid"}])
        sort = query.get("sort") or "created"
        if sort not in ("created", "updated", "comments"):
            raise validation_failed([{"resource": "Issue", "field": "sort", "code": "invalid"}])
        direction = query.get("direction") or "desc"
        if direction not in ("asc", "desc"):
            raise validation_failed([{"resource": "Issue", "field": "direction", "code": "invalid"}])
        wanted = [n.strip().lower() for n in (query.get("labels") or "").split(",") if n.strip()]
        creator = (query.get("creator") or "").lower()
        since = parse_since(query.get("since"))
        with self.lock:
            found = [
                i
                for i in r.issues.values()
                if (state == "all" or i.state == state)
                and all(name in {n.lower() for n in i.labels} for name in wanted)
                and (not creator or i.user.login.lower() == creator)
                and (since is None or i.updated_at >= since)
            ]

            def key(i: SimIssue) -> Any:
                if sort == "updated":
                    return (i.updated_at, i.number)
                if sort == "comments":
                    return (len(i.comment_ids), i.number)
                return (i.created_at, i.number)

            return sorted(found, key=key, reverse=direction == "desc")

    def list_repo_comments(self, r: SimRepo, query: dict[str, str]) -> list[SimComment]:
        """Every issue and pull-request comment of a repository (``GET /repos/{o}/{r}/issues/comments``)."""
        sort = query.get("sort") or "created"
        if sort not in ("created", "updated"):
            raise validation_failed([{"resource": "IssueComment", "field": "sort", "code": "invalid"}])
        direction = query.get("direction") or "asc"
        if direction not in ("asc", "desc"):
            raise validation_failed([{"resource": "IssueComment", "field": "direction", "code": "invalid"}])
        since = parse_since(query.get("since"))
        with self.lock:
            found = [c for c in r.comments.values() if since is None or c.updated_at >= since]
            if sort == "updated":
                found.sort(key=lambda c: (c.updated_at, c.id), reverse=direction == "desc")
            else:
                found.sort(key=lambda c: (c.created_at, c.id), reverse=direction == "desc")
            return found

    def update_issue(self, r: SimRepo, number: int, fields: dict[str, Any], actor: SimUser) -> SimIssue:
        with self.lock:
            issue = self.get_issue(r, number)
            state = fields.get("state")
            if state is not None and state not in ("open", "closed"):
                raise validation_failed([{"resource": "Issue", "field": "state", "code": "invalid"}])
            reason = fields.get("state_reason")
            if reason is not None and reason not in ("completed", "not_planned", "duplicate", "reopened"):
                raise validation_failed([{"resource": "Issue", "field": "state_reason", "code": "invalid"}])
            changes: dict[str, Any] = {}
            if "title" in fields and fields["title"] is not None and str(fields["title"]) != issue.title:
                changes["title"] = {"from": issue.title}
                issue.title = str(fields["title"])
            if "body" in fields and fields["body"] != issue.body:
                changes["body"] = {"from": issue.body}
                issue.body = fields["body"]
            if "labels" in fields and isinstance(fields["labels"], list):
                issue.labels = [self.ensure_label(r, str(name)).name for name in fields["labels"]]
            action: str | None = None
            if state == "closed" and issue.state == "open":
                issue.state, issue.closed_at, issue.closed_by = "closed", now(), actor
                issue.state_reason = reason or "completed"
                action = "closed"
            elif state == "open" and issue.state == "closed":
                issue.state, issue.closed_at, issue.closed_by, issue.state_reason = (
                    "open",
                    None,
                    None,
                    "reopened",
                )
                action = "reopened"
            elif reason is not None:
                issue.state_reason = reason
            issue.updated_at = now()
            if changes and not issue.is_pull:
                payload = self.event_base(r, "edited", actor) | {
                    "issue": self.render_issue(r, issue),
                    "changes": changes,
                }
                self.emit(r.owner, "issues", payload, sync=False)
            if action is not None and not issue.is_pull:
                payload = self.event_base(r, action, actor) | {"issue": self.render_issue(r, issue)}
                self.emit(r.owner, "issues", payload, sync=False)
            return issue

    # ----------------------------------------------------------------- labels
    def find_label(self, r: SimRepo, name: str) -> SimLabel | None:
        with self.lock:
            return next((lbl for lbl in r.labels.values() if lbl.name.lower() == name.lower()), None)

    def create_label(self, r: SimRepo, fields: dict[str, Any]) -> SimLabel:
        """``POST /repos/{o}/{r}/labels``: a name (unique, case-insensitively), a 6-digit hex colour."""
        name = fields.get("name")
        if not isinstance(name, str) or not name.strip():
            raise validation_failed([{"resource": "Label", "field": "name", "code": "missing_field"}])
        color = fields.get("color")
        if color is None:
            color = LABEL_COLORS[len(r.labels) % len(LABEL_COLORS)]
        if not isinstance(color, str) or not re.fullmatch(r"#?[0-9A-Fa-f]{6}", color):
            raise validation_failed([{"resource": "Label", "field": "color", "code": "invalid"}])
        description = fields.get("description")
        if description is not None and (not isinstance(description, str) or len(description) > 100):
            raise validation_failed([{"resource": "Label", "field": "description", "code": "invalid"}])
        with self.lock:
            if self.find_label(r, name) is not None:
                raise validation_failed([{"resource": "Label", "code": "already_exists", "field": "name"}])
            lid = self.new_id()
            created = SimLabel(
                id=lid,
                node_id=node_id("LA", lid),
                name=name,
                color=color.lstrip("#").lower(),
                description=description,
            )
            r.labels[name] = created
            return created

    def ensure_label(self, r: SimRepo, name: str) -> SimLabel:
        with self.lock:
            for existing in r.labels.values():
                if existing.name.lower() == name.lower():
                    return existing
            lid = self.new_id()
            created = SimLabel(
                id=lid, node_id=node_id("LA", lid), name=name, color=LABEL_COLORS[lid % len(LABEL_COLORS)]
            )
            r.labels[name] = created
            return created

    def add_labels(
        self, r: SimRepo, number: int, names: list[str], sender: SimUser, sync: bool
    ) -> list[Delivery]:
        payloads: list[tuple[str, dict[str, Any]]] = []
        with self.lock:
            issue = self.get_issue(r, number)
            for name in names:
                lbl = self.ensure_label(r, name)
                if lbl.name in issue.labels:
                    continue
                issue.labels.append(lbl.name)
                issue.updated_at = now()
                payloads.append(self.label_event(r, issue, "labeled", lbl, sender))
            if not sync:
                for event, payload in payloads:
                    self.emit(r.owner, event, payload, sync=False)
                return []
        out: list[Delivery] = []
        for event, payload in payloads:
            out += self.emit(r.owner, event, payload, sync=True)
        return out

    def remove_label(self, r: SimRepo, number: int, name: str, sender: SimUser) -> None:
        with self.lock:
            issue = self.get_issue(r, number)
            match = next((n for n in issue.labels if n.lower() == name.lower()), None)
            if match is None:
                raise ApiError(404, "Label does not exist")
            issue.labels.remove(match)
            issue.updated_at = now()
            event, payload = self.label_event(r, issue, "unlabeled", r.labels[match], sender)
            self.emit(r.owner, event, payload, sync=False)

    def label_event(
        self, r: SimRepo, issue: SimIssue, action: str, lbl: SimLabel, sender: SimUser
    ) -> tuple[str, dict[str, Any]]:
        base = self.event_base(r, action, sender)
        label_json = render.label(lbl, r, self.base_url)
        if issue.is_pull:
            return "pull_request", base | {
                "number": issue.number,
                "pull_request": self.pull_event_object(r, issue.number),
                "label": label_json,
            }
        return "issues", base | {"issue": self.render_issue(r, issue), "label": label_json}

    # ----------------------------------------------------------------- comments
    def add_comment(
        self, r: SimRepo, number: int, body: str, author: SimUser, via_app_id: int | None, sync: bool
    ) -> tuple[SimComment, list[Delivery]]:
        if not body:
            raise validation_failed([{"resource": "IssueComment", "field": "body", "code": "missing_field"}])
        with self.lock:
            issue = self.get_issue(r, number)
            cid = self.new_id()
            created = SimComment(
                id=cid,
                node_id=node_id("IC", cid),
                issue_number=number,
                body=body,
                user=author,
                via_app_id=via_app_id,
            )
            r.comments[cid] = created
            issue.comment_ids.append(cid)
            issue.updated_at = now()
            payload = self.event_base(r, "created", author) | {
                "issue": self.render_issue(r, issue),
                "comment": self.render_comment(r, created),
            }
            if not sync:
                self.emit(r.owner, "issue_comment", payload, sync=False)
                return created, []
        return created, self.emit(r.owner, "issue_comment", payload, sync=True)

    def edit_comment(self, r: SimRepo, comment_id: int, body: str, editor: SimUser) -> SimComment:
        if not body:
            raise validation_failed([{"resource": "IssueComment", "field": "body", "code": "missing_field"}])
        with self.lock:
            c = self.get_comment(r, comment_id)
            if c.body == body:
                return c
            c.edits.append(c.body)
            previous = c.body
            c.body = body
            c.updated_at = now()
            issue = r.issues[c.issue_number]
            payload = self.event_base(r, "edited", editor) | {
                "changes": {"body": {"from": previous}},
                "issue": self.render_issue(r, issue),
                "comment": self.render_comment(r, c),
            }
            self.emit(r.owner, "issue_comment", payload, sync=False)
            return c

    # ----------------------------------------------------------------- reactions
    def add_reaction(
        self, target: list[SimReaction], content: str, author: SimUser
    ) -> tuple[SimReaction, bool]:
        """Add a reaction unless that user already has it: (reaction, created?)."""
        if content not in REACTIONS:
            raise validation_failed([{"resource": "Reaction", "field": "content", "code": "invalid"}])
        with self.lock:
            for existing in target:
                if existing.content == content and existing.user is author:
                    return existing, False
            rid = self.new_id()
            created = SimReaction(id=rid, node_id=node_id("REA", rid), content=content, user=author)
            target.append(created)
            return created, True


def parse_since(raw: str | None) -> datetime | None:
    """An ISO 8601 ``since`` query parameter (``YYYY-MM-DDTHH:MM:SSZ``); 422 when malformed."""
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise validation_failed([{"resource": "Issue", "field": "since", "code": "invalid"}]) from exc
    if moment.tzinfo is None:
        raise validation_failed([{"resource": "Issue", "field": "since", "code": "invalid"}])
    return moment
