"""Otto: a self-hosted GitHub App that turns a labeled issue into planned, verified draft PRs."""
