"""Check suites and check runs (any App may post them; every installed App receives the webhooks)."""

from __future__ import annotations

from typing import Any

from app.dev.simulator import gitrepo, render
from app.dev.simulator.core import node_id
from app.dev.simulator.errors import ApiError, not_found, validation_failed
from app.dev.simulator.pulls import PullOps
from app.dev.simulator.state import SimApp, SimCheckRun, SimCheckSuite, SimRepo, now

STATUSES = ("queued", "in_progress", "completed", "waiting", "requested", "pending")
CONCLUSIONS = (
    "action_required",
    "cancelled",
    "failure",
    "neutral",
    "success",
    "skipped",
    "stale",
    "timed_out",
)


class CheckOps(PullOps):
    def pulls_for_sha(self, r: SimRepo, sha: str) -> list[dict[str, Any]]:
        out = []
        for p in r.pulls.values():
            if p.state == "open":
                self.refresh_pull(r, p)
                if p.last_head_sha == sha:
                    out.append(render.pull_minimal(p, r, self.base_url))
        return out

    def suite_runs(self, r: SimRepo, suite: SimCheckSuite) -> list[SimCheckRun]:
        return [run for run in r.check_runs.values() if run.suite_id == suite.id]

    def render_check_run(self, r: SimRepo, run: SimCheckRun, webhook: bool = False) -> dict[str, Any]:
        with self.lock:
            suite = r.check_suites[run.suite_id]
            app = self.apps[run.app_id]
            pulls = self.pulls_for_sha(r, run.head_sha)
            out = render.check_run(run, suite, r, self.base_url, app, pulls)
            if webhook:
                out["check_suite"] = self.render_check_suite(r, suite)
            return out

    def render_check_suite(self, r: SimRepo, suite: SimCheckSuite) -> dict[str, Any]:
        with self.lock:
            out = render.check_suite(
                suite,
                r,
                self.base_url,
                self.apps[suite.app_id],
                self.suite_runs(r, suite),
                self.pulls_for_sha(r, suite.head_sha),
            )
            info = gitrepo.commit_info(r.path, suite.head_sha)
            out["head_commit"] = {
                "id": info.sha,
                "tree_id": info.tree,
                "message": info.message,
                "timestamp": info.committer_date,
                "author": {"name": info.author_name, "email": info.author_email},
                "committer": {"name": info.committer_name, "email": info.committer_email},
            }
            return out

    def get_check_run(self, r: SimRepo, run_id: int) -> SimCheckRun:
        with self.lock:
            found = r.check_runs.get(run_id)
            if found is None:
                raise not_found()
            return found

    def create_check_run(self, r: SimRepo, app: SimApp, fields: dict[str, Any]) -> SimCheckRun:
        name, head_sha = fields.get("name"), fields.get("head_sha")
        if not name or not head_sha:
            missing = "name" if not name else "head_sha"
            raise validation_failed([{"resource": "CheckRun", "field": missing, "code": "missing_field"}])
        with self.lock:
            sha = gitrepo.resolve(r.path, str(head_sha))
            if sha is None or sha != head_sha:
                raise ApiError(422, f"No commit found for SHA: {head_sha}")
            suite = next(
                (s for s in r.check_suites.values() if s.app_id == app.id and s.head_sha == sha), None
            )
            if suite is None:
                sid = self.new_id()
                branch = next(
                    (
                        strip
                        for ref, value in gitrepo.list_refs(r.path).items()
                        if value == sha and ref.startswith("refs/heads/")
                        for strip in [ref[len("refs/heads/") :]]
                    ),
                    None,
                )
                suite = SimCheckSuite(
                    id=sid, node_id=node_id("CS", sid), app_id=app.id, head_sha=sha, head_branch=branch
                )
                r.check_suites[sid] = suite
            rid = self.new_id()
            run = SimCheckRun(
                id=rid,
                node_id=node_id("CR", rid),
                app_id=app.id,
                suite_id=suite.id,
                name=str(name),
                head_sha=sha,
            )
            self._apply_check_fields(run, fields)
            r.check_runs[rid] = run
            self._emit_check_run(r, app, run, "created")
            if run.status == "completed":
                self._emit_completion(r, app, run)
            return run

    def update_check_run(self, r: SimRepo, app: SimApp, run_id: int, fields: dict[str, Any]) -> SimCheckRun:
        with self.lock:
            run = self.get_check_run(r, run_id)
            if run.app_id != app.id:
                raise ApiError(
                    403, f"Invalid app_id `{app.id}` - check run can only be modified by its creator"
                )
            was_completed = run.status == "completed"
            if fields.get("name"):
                run.name = str(fields["name"])
            self._apply_check_fields(run, fields)
            r.check_suites[run.suite_id].updated_at = now()
            if run.status == "completed" and not was_completed:
                self._emit_completion(r, app, run)
            return run

    def _apply_check_fields(self, run: SimCheckRun, fields: dict[str, Any]) -> None:
        status, conclusion = fields.get("status"), fields.get("conclusion")
        if status is not None and status not in STATUSES:
            raise validation_failed([{"resource": "CheckRun", "field": "status", "code": "invalid"}])
        if conclusion is not None and conclusion not in CONCLUSIONS:
            raise validation_failed([{"resource": "CheckRun", "field": "conclusion", "code": "invalid"}])
        if conclusion is not None:
            run.conclusion, run.status = str(conclusion), "completed"
            run.completed_at = now()
        elif status is not None:
            if status == "completed":
                raise validation_failed(
                    [{"resource": "CheckRun", "field": "conclusion", "code": "missing_field"}]
                )
            run.status = str(status)
        for key in ("external_id", "details_url"):
            if fields.get(key) is not None:
                setattr(run, key, str(fields[key]))
        output = fields.get("output")
        if isinstance(output, dict):
            run.output = dict(output)

    def _emit_check_run(self, r: SimRepo, app: SimApp, run: SimCheckRun, action: str) -> None:
        sender = app.bot
        payload = self.event_base(r, action, sender) | {
            "check_run": self.render_check_run(r, run, webhook=True)
        }
        self.emit(r.owner, "check_run", payload, sync=False)

    def _emit_completion(self, r: SimRepo, app: SimApp, run: SimCheckRun) -> None:
        self._emit_check_run(r, app, run, "completed")
        suite = r.check_suites[run.suite_id]
        if all(other.status == "completed" for other in self.suite_runs(r, suite)):
            payload = self.event_base(r, "completed", app.bot) | {
                "check_suite": self.render_check_suite(r, suite)
            }
            self.emit(r.owner, "check_suite", payload, sync=False)

    def list_check_runs(
        self, r: SimRepo, ref: str, check_name: str | None, status: str | None, app_id: int | None
    ) -> list[SimCheckRun]:
        with self.lock:
            sha = gitrepo.resolve(r.path, ref)
            if sha is None:
                raise ApiError(422, f"No commit found for SHA: {ref}")
            runs = [
                run
                for run in r.check_runs.values()
                if run.head_sha == sha
                and (check_name is None or run.name == check_name)
                and (status is None or run.status == status)
                and (app_id is None or run.app_id == app_id)
            ]
            return sorted(runs, key=lambda run: run.id, reverse=True)
