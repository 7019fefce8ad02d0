"""The Simulator's storage, identities, tokens and webhook emission (the shared base of the ops mixins)."""

from __future__ import annotations

import base64
import itertools
import re
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from app.dev.simulator import gitrepo, render
from app.dev.simulator.auth import Actor, new_token, split_authorization, verify_app_jwt
from app.dev.simulator.errors import ApiError, not_found
from app.dev.simulator.faults import Fault, FaultInjector
from app.dev.simulator.ratelimit import RateLimits
from app.dev.simulator.state import (
    PERMISSION_ORDER,
    CallRecord,
    Delivery,
    ManifestCode,
    Permission,
    PushRecord,
    SimApp,
    SimInstallation,
    SimRepo,
    SimToken,
    SimUser,
    now,
)
from app.dev.simulator.webhooks import DeliveryQueue, build_delivery, post

DEFAULT_APP_PERMISSIONS = {
    "checks": "write",
    "contents": "write",
    "issues": "write",
    "metadata": "read",
    "pull_requests": "write",
    "statuses": "read",
}
DEFAULT_APP_EVENTS = [
    "check_run",
    "check_suite",
    "issue_comment",
    "issues",
    "pull_request",
    "pull_request_review",
    "pull_request_review_comment",
    "push",
]
# Events delivered only to Apps subscribed to them (``SimApp.events``), like GitHub. The simulator's other
# events still reach every installed App whatever it subscribed to.
SUBSCRIPTION_FILTERED = frozenset({"push"})


def rate_resource(record: CallRecord) -> str | None:
    """The rate-limit resource a request counts against (None: not counted, like ``GET /rate_limit``)."""
    if record.injected or record.path == "/rate_limit":
        return None
    if record.kind == "graphql":
        return "graphql"
    if record.kind == "rest":
        return "integration_manifest" if record.path.startswith("/app-manifests/") else "core"
    return None


SUSPENDED_MESSAGE = "This installation has been suspended"  # GitHub's answer (403) for a suspended one


class SimulatorError(RuntimeError):
    """Misuse of the Python API (unknown user, repository, ...)."""


def node_id(prefix: str, number: int) -> str:
    return f"{prefix}_" + base64.b64encode(f"sim:{number}".encode()).decode().rstrip("=")


class SimulatorCore:
    def __init__(self, root_dir: Path, base_url: str = "http://127.0.0.1") -> None:
        self.root_dir = Path(root_dir)
        self.root_dir.mkdir(parents=True, exist_ok=True)
        self.base_url = base_url.rstrip("/")
        self.lock = threading.RLock()
        self._ids: Iterator[int] = itertools.count(1001)
        self._reserved_ids: set[int] = set()
        self.users: dict[str, SimUser] = {}
        self.apps: dict[int, SimApp] = {}
        self.installations: dict[int, SimInstallation] = {}
        self.tokens: dict[str, SimToken] = {}
        self.repos: dict[tuple[str, str], SimRepo] = {}
        self._deliveries: list[Delivery] = []
        self._calls: list[CallRecord] = []
        self._pushes: list[PushRecord] = []
        self._faults = FaultInjector()
        self._outage: Fault | None = None
        self.rate_limits = RateLimits()
        self.web_sessions: dict[str, str] = {}  # browser session cookie → login (see app_manifests)
        self.manifest_codes: dict[str, ManifestCode] = {}
        self._queue = DeliveryQueue(self._webhook_url)
        self.oauth_codes: dict[str, Any] = {}  # one-time codes of the user authorization flow (oauth.py)

    # ----------------------------------------------------------------- ids and lookups
    def new_id(self) -> int:
        with self.lock:
            taken = set(self.apps) | self._reserved_ids
            while True:
                candidate = next(self._ids)
                if candidate not in taken:
                    return candidate

    def user(self, login: str) -> SimUser:
        with self.lock:
            found = self.users.get(login.lower())
            if found is None:
                raise SimulatorError(f"unknown user {login!r}")
            return found

    def repo(self, owner: str, name: str) -> SimRepo:
        with self.lock:
            found = self.repos.get((owner.lower(), name.lower()))
            if found is None:
                raise SimulatorError(f"unknown repository {owner}/{name}")
            return found

    def app(self, app_id: int) -> SimApp:
        with self.lock:
            found = self.apps.get(app_id)
            if found is None:
                raise SimulatorError(f"unknown app {app_id}")
            return found

    def app_of_bot(self, u: SimUser) -> SimApp | None:
        return next((a for a in self.apps.values() if a.bot is u), None)

    # ----------------------------------------------------------------- world set-up
    def create_user(
        self, login: str, type: str = "User", name: str | None = None, email: str | None = None
    ) -> SimUser:
        with self.lock:
            if login.lower() in self.users:
                raise SimulatorError(f"user {login!r} exists")
            uid = self.new_id()
            prefix = {"User": "U", "Bot": "BOT", "Organization": "O"}.get(type, "U")
            created = SimUser(
                login=login, id=uid, node_id=node_id(prefix, uid), type=type, name=name, email=email
            )
            self.users[login.lower()] = created
            return created

    def create_user_token(self, login: str) -> str:
        """A personal access token of a human (REST and git over HTTP as that user)."""
        with self.lock:
            human = self.user(login)
            token = new_token("ghp_")
            self.tokens[token] = SimToken(
                token=token, expires_at=now() + timedelta(days=30), login=human.login
            )
            return token

    def register_app(
        self,
        app_id: int,
        slug: str,
        public_key_pem: str,
        webhook_url: str | None = None,
        webhook_secret: str = "",
        name: str | None = None,
        owner: str | None = None,
        permissions: dict[str, str] | None = None,
        events: list[str] | None = None,
    ) -> SimApp:
        """Register a GitHub App and its bot user ``<slug>[bot]`` (whose user id differs from the App id)."""
        with self.lock:
            if app_id in self.apps:
                raise SimulatorError(f"app {app_id} exists")
            # reserve the App id first so that no user (the bot included) gets the same number
            self._reserved_ids.add(app_id)
            bot = self.create_user(f"{slug}[bot]", type="Bot")
            owner_user = (
                self.user(owner)
                if owner
                else self.users.get(f"{slug}-dev") or self.create_user(f"{slug}-dev", type="Organization")
            )
            created = SimApp(
                id=app_id,
                slug=slug,
                name=name or slug,
                client_id=f"Iv1.sim{app_id:010d}",
                public_key_pem=public_key_pem,
                webhook_url=webhook_url,
                webhook_secret=webhook_secret,
                hook_id=self.new_id(),
                bot=bot,
                owner=owner_user,
                node_id=node_id("A", app_id),
                permissions=dict(permissions or DEFAULT_APP_PERMISSIONS),
                events=list(events or DEFAULT_APP_EVENTS),
                client_secret=new_token(""),
            )
            self.apps[app_id] = created
            return created

    def set_webhook_url(self, app_id: int, url: str | None) -> None:
        with self.lock:
            self.app(app_id).webhook_url = url

    def install_app(self, app_id: int, account_login: str) -> int:
        """Install the App on an account (all its repositories); emits ``installation.created`` (sync)."""
        with self.lock:
            app = self.app(app_id)
            account = self.user(account_login)
            existing = self.installation_for(app_id, account.login)
            if existing is not None:
                return existing.id
            inst_id = self.new_id()
            inst = SimInstallation(
                id=inst_id, app_id=app_id, account=account, node_id=node_id("MDIz", inst_id)
            )
            self.installations[inst_id] = inst
            payload: dict[str, Any] = {
                "action": "created",
                "installation": render.installation(inst, app, self.base_url),
                "repositories": [render.repo_brief(r) for r in self.repos.values() if r.owner is account],
                "requester": None,
                "sender": render.user(account, self.base_url),
            }
            delivery = build_delivery("installation", payload, app.id, app.hook_id, app.webhook_secret)
            self._deliveries.append(delivery)
        post(delivery, self._webhook_url(app_id))
        return inst_id

    def installation_for(self, app_id: int, account_login: str) -> SimInstallation | None:
        with self.lock:
            return next(
                (
                    i
                    for i in self.installations.values()
                    if i.app_id == app_id and i.account.login.lower() == account_login.lower()
                ),
                None,
            )

    def create_repo(
        self,
        owner: str,
        name: str,
        files: dict[str, str],
        default_branch: str = "main",
        private: bool = True,
        description: str | None = None,
    ) -> SimRepo:
        """Create a bare git repository with an initial commit of ``files`` authored by the owner."""
        with self.lock:
            owner_user = self.users.get(owner.lower()) or self.create_user(owner)
            if (owner.lower(), name.lower()) in self.repos:
                raise SimulatorError(f"repository {owner}/{name} exists")
            path = self.root_dir / owner_user.login / f"{name}.git"
            gitrepo.init_bare(path, default_branch)
            if files:
                sha = gitrepo.commit_files(
                    path, None, dict(files), "Initial commit", self.identity(owner_user)
                )
                gitrepo.update_ref(path, f"refs/heads/{default_branch}", sha)
            rid = self.new_id()
            created = SimRepo(
                owner=owner_user,
                name=name,
                id=rid,
                node_id=node_id("R", rid),
                path=path,
                default_branch=default_branch,
                private=private,
                description=description,
            )
            self.repos[(owner.lower(), name.lower())] = created
            return created

    def identity(self, u: SimUser) -> gitrepo.Identity:
        return gitrepo.Identity(u.login, f"{u.id}+{u.login}@users.noreply.github.com")

    def require_checks(self, owner: str, repo: str, names: list[str]) -> None:
        """Branch protection on the default branch: these checks must succeed before a merge (a PR whose head
        lacks them or fails one is ``mergeable_state: blocked``, and merging it answers 405)."""
        with self.lock:
            self.repo(owner, repo).required_checks = list(names)

    def set_permission(self, owner: str, repo: str, login: str, permission: Permission) -> None:
        with self.lock:
            if permission not in PERMISSION_ORDER:
                raise SimulatorError(f"unknown permission {permission!r}")
            target = self.repo(owner, repo)
            target.collaborators[self.user(login).login] = permission

    def permission_of(self, r: SimRepo, login: str) -> Permission:
        with self.lock:
            if login.lower() == r.owner.login.lower():
                return "admin"
            for name, level in r.collaborators.items():
                if name.lower() == login.lower():
                    return level
            return "none"

    def expire_tokens(self) -> None:
        """Expire every installation token issued so far (the next use answers 401 Bad credentials)."""
        with self.lock:
            for token in self.tokens.values():
                if token.installation_id is not None:
                    token.expires_at = now() - timedelta(seconds=1)

    # ----------------------------------------------------------------- authentication
    def authenticate(self, authorization: str | None, allow: tuple[str, ...]) -> Actor:
        """Resolve an ``Authorization`` header to an Actor of one of the ``allow``-ed kinds, else 401."""
        parts = split_authorization(authorization)
        if parts is None:
            raise ApiError(401, "Requires authentication")
        scheme, value = parts
        with self.lock:
            if scheme == "bearer" and value.count(".") == 2:
                app = verify_app_jwt(value, self.apps)
                if "app" not in allow:
                    raise ApiError(
                        401, "A JSON web token cannot be used to authenticate as an installation or user"
                    )
                return Actor(kind="app", user=None, app=app)
            if scheme not in ("token", "bearer"):
                raise ApiError(401, "Bad credentials")
            token = self.tokens.get(value)
            if token is None or token.revoked or token.expires_at <= now():
                raise ApiError(401, "Bad credentials")
            actor = self.actor_for_token(token)
            if actor.installation is not None and actor.installation.suspended_at is not None:
                raise ApiError(403, SUSPENDED_MESSAGE)
            if actor.kind not in allow:
                raise ApiError(401, "A JSON web token could not be decoded")
            return actor

    def actor_for_token(self, token: SimToken) -> Actor:
        if token.installation_id is not None:
            inst = self.installations[token.installation_id]
            app = self.apps[inst.app_id]
            return Actor(kind="installation", user=app.bot, app=app, installation=inst)
        assert token.login is not None
        return Actor(kind="user", user=self.user(token.login))

    def actor_for_secret(self, secret: str) -> Actor | None:
        """The actor of a raw token (git over HTTP's Basic password) or None when invalid/expired."""
        with self.lock:
            token = self.tokens.get(secret)
            if token is None or token.revoked or token.expires_at <= now():
                return None
            actor = self.actor_for_token(token)
            if actor.installation is not None and actor.installation.suspended_at is not None:
                return None
            return actor

    def issue_installation_token(
        self, actor: Actor, installation_id: int
    ) -> tuple[SimToken, SimInstallation]:
        with self.lock:
            inst = self.installations.get(installation_id)
            if inst is None or actor.app is None or inst.app_id != actor.app.id:
                raise not_found()
            if inst.suspended_at is not None:
                raise ApiError(403, SUSPENDED_MESSAGE)
            token = SimToken(
                token=new_token("ghs_"), expires_at=now() + timedelta(hours=1), installation_id=inst.id
            )
            self.tokens[token.token] = token
            return token, inst

    def access_repo(self, actor: Actor, owner: str, name: str, need: Permission = "read") -> SimRepo:
        """The repository if ``actor`` may use it at level ``need`` (404 otherwise, like GitHub)."""
        with self.lock:
            found = self.repos.get((owner.lower(), name.lower()))
            if found is None:
                raise not_found()
            if actor.kind == "installation":
                assert actor.installation is not None
                if actor.installation.account is not found.owner or not actor.installation.covers(found.id):
                    raise not_found()
                return found
            if actor.kind == "user" and actor.user is not None:
                level = self.permission_of(found, actor.user.login)
                if level == "none" and found.private:
                    raise not_found()
                if PERMISSION_ORDER.index(level) < PERMISSION_ORDER.index(need):
                    raise ApiError(403, "Resource not accessible by personal access token")
                return found
            raise not_found()

    # ----------------------------------------------------------------- webhooks
    def _webhook_url(self, app_id: int) -> str | None:
        with self.lock:
            app = self.apps.get(app_id)
            return app.webhook_url if app else None

    def recipients(
        self, account: SimUser, event: str, repo_id: Any, only_app: int | None = None
    ) -> list[SimInstallation]:
        """The installations on ``account`` an ``event`` about repository ``repo_id`` is delivered to."""
        with self.lock:
            found = []
            for inst in sorted(self.installations.values(), key=lambda i: i.id):
                if inst.account is not account or (only_app is not None and inst.app_id != only_app):
                    continue
                if inst.suspended_at is not None:  # GitHub sends a suspended installation nothing
                    continue
                if isinstance(repo_id, int) and not inst.covers(repo_id):  # not among its repositories
                    continue
                if event in SUBSCRIPTION_FILTERED and event not in self.apps[inst.app_id].events:
                    continue
                found.append(inst)
            return found

    def emit(
        self, account: SimUser, event: str, payload: dict[str, Any], sync: bool, only_app: int | None = None
    ) -> list[Delivery]:
        """Build one signed delivery per App installed on ``account``; post them now (``sync``, call without
        holding the lock) or queue them in order for the background thread."""
        with self.lock:
            built: list[Delivery] = []
            repository = payload.get("repository")
            repo_id = repository.get("id") if isinstance(repository, dict) else None
            for inst in self.recipients(account, event, repo_id, only_app):
                app = self.apps[inst.app_id]
                body = dict(payload)
                body["installation"] = {"id": inst.id, "node_id": inst.node_id}
                delivery = build_delivery(event, body, app.id, app.hook_id, app.webhook_secret)
                self._deliveries.append(delivery)
                built.append(delivery)
                if not sync:
                    self._queue.put(delivery)
        if sync:
            for delivery in built:
                post(delivery, self._webhook_url(delivery.app_id))
        return built

    def first_delivery(self, deliveries: list[Delivery], event: str, action: str | None) -> Delivery:
        if deliveries:
            return deliveries[0]
        return Delivery(
            id="",
            event=event,
            action=action,
            app_id=0,
            body=b"{}",
            headers={},
            error="no App installed on this account",
        )

    def redeliver(self, delivery_id: str) -> Delivery:
        """Send an earlier delivery again, same body and same ``X-GitHub-Delivery`` (synchronously)."""
        with self.lock:
            original = next((d for d in self._deliveries if d.id == delivery_id), None)
            if original is None:
                raise SimulatorError(f"unknown delivery {delivery_id}")
            again = Delivery(
                id=original.id,
                event=original.event,
                action=original.action,
                app_id=original.app_id,
                body=original.body,
                headers=dict(original.headers),
                redelivery=True,
            )
            self._deliveries.append(again)
        return post(again, self._webhook_url(again.app_id))

    def wait_for_deliveries_idle(self, timeout: float = 10.0) -> None:
        """Block until every queued (asynchronous) delivery has been posted; TimeoutError otherwise."""
        self._queue.wait_idle(timeout)

    @property
    def deliveries(self) -> list[Delivery]:
        with self.lock:
            return list(self._deliveries)

    def deliveries_of(self, event: str, action: str | None = None) -> list[Delivery]:
        return [d for d in self.deliveries if d.event == event and (action is None or d.action == action)]

    # ----------------------------------------------------------------- call log
    def record_call(self, record: CallRecord) -> None:
        with self.lock:
            self._calls.append(record)
        resource = rate_resource(record)
        if resource is not None:
            self.rate_limits.count(record.actor, resource)

    @property
    def calls(self) -> list[CallRecord]:
        with self.lock:
            return list(self._calls)

    def count_calls(self, method: str, path_pattern: str, status: int | None = None) -> int:
        """Number of answered requests whose method matches and whose path fully matches the regex."""
        pattern = re.compile(path_pattern)
        return sum(
            1
            for c in self.calls
            if c.method == method.upper()
            and pattern.fullmatch(c.path)
            and (status is None or c.status == status)
        )

    # ----------------------------------------------------------------- fault injection
    def inject_faults(self, method: str, path_regex: str, faults: list[Fault]) -> None:
        """Answer the next ``len(faults)`` REST/GraphQL requests matching ``method`` ("*": any) and
        ``path_regex`` (fullmatch on the call log's path) with these faults, in order; then serve normally."""
        self._faults.add(method, path_regex, faults)

    def take_fault(self, method: str, path: str) -> Fault | None:
        return self._faults.take(method, path)

    def outage(self, fault: Fault | None = None) -> None:
        """GitHub down: every REST, GraphQL and git request is answered ``fault`` (default: 502, GitHub's
        page) until :meth:`end_outage`. Webhooks are still delivered (they are GitHub's, not the App's)."""
        with self.lock:
            self._outage = fault or Fault.bad_gateway()

    def end_outage(self) -> None:
        with self.lock:
            self._outage = None

    def outage_fault(self) -> Fault | None:
        return self._outage

    @property
    def pending_faults(self) -> int:
        return self._faults.pending()

    def clear_faults(self) -> None:
        self._faults.clear()

    def record_push(self, record: PushRecord) -> None:
        with self.lock:
            self._pushes.append(record)

    @property
    def pushes(self) -> list[PushRecord]:
        with self.lock:
            return list(self._pushes)

    def close(self) -> None:
        """Stop the background delivery thread."""
        self._queue.close()
