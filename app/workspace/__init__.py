"""Otto's trusted git: bare mirrors, a warm pool of task checkouts, and the boundary the sandbox's work
crosses as data before Otto commits and pushes it."""

from app.workspace.checkouts import FileChange, Workspace, Worktree
from app.workspace.git import (
    DiskFull,
    GitIdentity,
    Identity,
    MergeConflict,
    PushRejected,
    RemoteUnavailable,
    WorkspaceError,
    valid_branch_name,
)
from app.workspace.mirrors import REMOTE_REFS

__all__ = [
    "REMOTE_REFS",
    "DiskFull",
    "FileChange",
    "GitIdentity",
    "Identity",
    "MergeConflict",
    "PushRejected",
    "RemoteUnavailable",
    "Workspace",
    "WorkspaceError",
    "Worktree",
    "valid_branch_name",
]
