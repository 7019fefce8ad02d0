"""The App's installation changing, as a person does it on GitHub's settings pages: uninstalled, suspended
and unsuspended, repositories taken out of it and added back. Each change takes effect at once (tokens,
API access, git, webhooks) and sends its webhook synchronously, like ``install_app``:

- ``uninstall_app`` → ``installation.deleted``: the installation is gone, its tokens are revoked (401), a new
  token is refused (404), nothing more is delivered to the App for the account;
- ``suspend_installation`` → ``installation.suspend``: tokens are refused with GitHub's 403 "This installation
  has been suspended" (new and existing ones; git too), no other event is delivered until
  ``unsuspend_installation`` (→ ``installation.unsuspend``);
- ``remove_installation_repositories`` / ``add_installation_repositories`` →
  ``installation_repositories.removed`` / ``.added``: the installation's selection becomes "selected"; a
  repository outside it answers 404 to the installation (REST and git) and its events aren't delivered.
"""

from __future__ import annotations

from typing import Any

from app.dev.simulator import render
from app.dev.simulator.core import SimulatorCore, SimulatorError
from app.dev.simulator.state import Delivery, SimApp, SimInstallation, now
from app.dev.simulator.webhooks import build_delivery, post


class InstallationOps(SimulatorCore):
    def _installation(self, app_id: int, account_login: str) -> tuple[SimApp, SimInstallation]:
        app = self.app(app_id)
        inst = self.installation_for(app_id, account_login)
        if inst is None:
            raise SimulatorError(f"app {app_id} is not installed on {account_login}")
        return app, inst

    def _deliver(self, app: SimApp, event: str, payload: dict[str, Any]) -> Delivery:
        """Build, record and post (synchronously) one delivery to ``app``; call holding the lock."""
        delivery = build_delivery(event, payload, app.id, app.hook_id, app.webhook_secret)
        self._deliveries.append(delivery)
        return delivery

    def _covered(self, inst: SimInstallation) -> list[dict[str, Any]]:
        return [
            render.repo_brief(r) for r in self.repos.values() if r.owner is inst.account and inst.covers(r.id)
        ]

    def uninstall_app(self, app_id: int, account_login: str, sender: str) -> Delivery:
        """Remove the App from the account (``installation.deleted``)."""
        with self.lock:
            app, inst = self._installation(app_id, account_login)
            payload: dict[str, Any] = {
                "action": "deleted",
                "installation": render.installation(inst, app, self.base_url),
                "repositories": self._covered(inst),
                "sender": render.user(self.user(sender), self.base_url),
            }
            del self.installations[inst.id]
            for token in self.tokens.values():
                if token.installation_id == inst.id:
                    token.revoked = True
            delivery = self._deliver(app, "installation", payload)
        return post(delivery, self._webhook_url(app_id))

    def suspend_installation(self, app_id: int, account_login: str, sender: str) -> Delivery:
        """Suspend the App's installation on the account (``installation.suspend``)."""
        return self._set_suspended(app_id, account_login, sender, suspended=True)

    def unsuspend_installation(self, app_id: int, account_login: str, sender: str) -> Delivery:
        return self._set_suspended(app_id, account_login, sender, suspended=False)

    def _set_suspended(self, app_id: int, account_login: str, sender: str, suspended: bool) -> Delivery:
        with self.lock:
            app, inst = self._installation(app_id, account_login)
            who = self.user(sender)
            inst.suspended_at, inst.suspended_by = (now(), who) if suspended else (None, None)
            payload: dict[str, Any] = {
                "action": "suspend" if suspended else "unsuspend",
                "installation": render.installation(inst, app, self.base_url),
                "sender": render.user(who, self.base_url),
            }
            delivery = self._deliver(app, "installation", payload)
        return post(delivery, self._webhook_url(app_id))

    def remove_installation_repositories(
        self, app_id: int, account_login: str, repos: list[str], sender: str
    ) -> Delivery:
        """Take repositories (names, of the account) out of the installation's selection."""
        return self._change_repositories(app_id, account_login, repos, sender, add=False)

    def add_installation_repositories(
        self, app_id: int, account_login: str, repos: list[str], sender: str
    ) -> Delivery:
        return self._change_repositories(app_id, account_login, repos, sender, add=True)

    def _change_repositories(
        self, app_id: int, account_login: str, repos: list[str], sender: str, add: bool
    ) -> Delivery:
        with self.lock:
            app, inst = self._installation(app_id, account_login)
            changed = [self.repo(inst.account.login, name) for name in repos]
            if inst.repository_ids is None:
                inst.repository_ids = {r.id for r in self.repos.values() if r.owner is inst.account}
            for r in changed:
                if add:
                    inst.repository_ids.add(r.id)
                else:
                    inst.repository_ids.discard(r.id)
            briefs = [render.repo_brief(r) for r in changed]
            payload: dict[str, Any] = {
                "action": "added" if add else "removed",
                "installation": render.installation(inst, app, self.base_url),
                "repository_selection": "selected",
                "repositories_added": briefs if add else [],
                "repositories_removed": [] if add else briefs,
                "requester": None,
                "sender": render.user(self.user(sender), self.base_url),
            }
            delivery = self._deliver(app, "installation_repositories", payload)
        return post(delivery, self._webhook_url(app_id))

    def installation_repositories(self, inst: SimInstallation) -> list[Any]:
        """The repositories the installation can reach."""
        with self.lock:
            return [r for r in self.repos.values() if r.owner is inst.account and inst.covers(r.id)]
