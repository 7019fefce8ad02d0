"""A local GitHub for development, demos and tests: REST (``/api/v3``), GraphQL (``/api/graphql``), git
smart HTTP (``/{owner}/{repo}.git``) and signed webhooks, laid out like GitHub Enterprise Server.

Start it::

    sim = Simulator(tmp_path / "github")
    running = serve_in_thread(create_app(sim))
    sim.base_url = running.url          # githubkit: base_url=f"{running.url}/api/v3/"

World set-up (Python API; human actions deliver their webhooks synchronously and return the Delivery):

- ``register_app(app_id, slug, public_key_pem, webhook_url=None, webhook_secret="") -> SimApp`` (bot user
  ``<slug>[bot]`` with its own user id); ``set_webhook_url(app_id, url)``
- ``create_user(login, type="User") -> SimUser``; ``create_user_token(login) -> str`` (a human's PAT for
  REST and git over HTTP)
- ``create_repo(owner, name, files, default_branch="main", private=True) -> SimRepo``
- ``install_app(app_id, account_login) -> installation id`` (emits ``installation.created``);
  ``uninstall_app(app_id, account, sender)`` (``installation.deleted``: tokens revoked, new ones 404),
  ``suspend_installation`` / ``unsuspend_installation(app_id, account, sender)`` (tokens 403 "This
  installation has been suspended", no events meanwhile), ``remove_installation_repositories`` /
  ``add_installation_repositories(app_id, account, [repo names], sender)``
  (``installation_repositories.removed``/``.added``: a repository outside the selection answers the
  installation 404, REST and git, and its events aren't delivered); ``GET /installation/repositories``
- ``set_permission(owner, repo, login, "admin"|"maintain"|"write"|"triage"|"read"|"none")``
- ``create_issue(owner, repo, title, body, user) -> number`` (emits ``issues.opened``)
- ``add_label(owner, repo, number, label, sender) -> Delivery`` (``issues.labeled``, on a PR
  ``pull_request.labeled``); ``comment(owner, repo, number, body, user) -> Delivery``
  (``issue_comment.created``); ``submit_review(owner, repo, pr_number, user, "APPROVED"|
  "CHANGES_REQUESTED"|"COMMENTED", body="", commit_id=None, comments=[{path, line, body}]) -> Delivery``
- ``push_commit(owner, repo, branch, files, message, user, from_ref=None, force=False) -> sha`` (a human
  pushes: ``push``, then ``pull_request.synchronize`` for open PRs on that branch);
  ``close_pull_request(owner, repo, n, user)``. Every branch change (git push, the git refs API, a merge)
  sends ``push`` to the Apps subscribed to it (the only event filtered by an App's ``events`` so far)
- ``post_check_run(app_id, owner, repo, head_sha, name, conclusion="success")`` (e.g. a CI App)
- ``redeliver(delivery_id) -> Delivery`` (same body, same ``X-GitHub-Delivery``)
- ``expire_tokens()``; ``close()`` stops the background delivery thread
- App registration from a manifest, as in a browser: ``create_web_session(login) -> cookie`` (send it
  as ``user_session``), then ``POST /settings/apps/new?state=...`` (or the organization variant
  ``/organizations/{org}/settings/apps/new``) with the ``manifest`` form field registers the App (fresh
  key pair) and redirects to its ``redirect_url`` with ``code`` and ``state``;
  ``POST /api/v3/app-manifests/{code}/conversions`` answers once (then 404; ``expire_manifest_codes()``
  → 422). ``GET/POST /apps/{slug}/installations/new`` installs it. Python:
  ``register_app_from_manifest(owner, manifest) -> ManifestCode``, ``app_by_slug(slug)``

Events caused by an App's REST calls or git pushes are queued and posted in order by a background thread;
``wait_for_deliveries_idle(timeout)`` waits for them. Every delivery (sync or async) is in ``deliveries``
(``deliveries_of(event, action)``), each with ``id, event, action, app_id, body, headers, status_code,
response_body, payload``.

Rate limits are counted like GitHub's (per caller, one-hour window) and reported by ``GET /rate_limit`` and
the ``x-ratelimit-*`` headers of every API answer; nothing is refused for it (inject faults for that).

Inspection: ``issue``, ``comments`` (``SimComment.edits`` holds earlier bodies, ``updated_at``),
``reactions(owner, repo, number=None, comment_id=None)``, ``pulls``, ``pull``, ``reviews``, ``branches``
(name → sha), ``read_file(owner, repo, ref, path)``, ``check_runs``, ``git_log``, ``pushes``, ``calls``
(``CallRecord(method, path, status, actor, app_id, query, injected, kind)`` with REST paths without
``/api/v3``; ``kind`` is rest, graphql, git or web)
and ``count_calls(method, path_regex, status=None)``.

Fault injection: ``inject_faults(method, path_regex, [Fault, ...])`` answers the next matching REST/GraphQL
requests (method or "*", ``re.fullmatch`` on the call log's path) with these answers, one each and in
order, then normal service resumes; such calls are logged with ``injected=True``. Ready-made faults:
``Fault.bad_gateway()`` (502, HTML), ``Fault.service_unavailable()`` (503), ``Fault.gateway_timeout()``
(504), ``Fault.secondary_rate_limit(retry_after=60)`` (403; None: no header), ``Fault.too_many_requests(
retry_after=60)`` (429), ``Fault.primary_rate_limit(reset, installation_id=None)`` (403 with
``x-ratelimit-remaining: 0`` and ``x-ratelimit-reset``); or ``Fault(status, headers, body)``.
``pending_faults``, ``clear_faults()``. ``outage(fault=None)``: every REST, GraphQL and git request answered
``fault`` (502) until ``end_outage()``.
"""

from app.dev.simulator.errors import ApiError
from app.dev.simulator.faults import Fault
from app.dev.simulator.server import create_app
from app.dev.simulator.simulator import Simulator
from app.dev.simulator.state import CallRecord, Delivery, PushRecord, SimApp, SimRepo, SimUser

__all__ = [
    "ApiError",
    "CallRecord",
    "Delivery",
    "Fault",
    "PushRecord",
    "SimApp",
    "SimRepo",
    "SimUser",
    "Simulator",
    "create_app",
]
