"""The hand-over certificate of a pool slot, and the exact reset it makes possible.

When Otto hands a checkout to a task it records, in the slot's git dir (never visible to a sandbox), a
certificate: the commit the work tree was exactly at, the kernel's change time (ctime, nanoseconds) of the
certificate file itself, written after Otto's last write to the tree, and the inode of every file and symlink.
Nothing can change a file's content, mode, owner, extended attributes or links, nor create, rename or
replace an entry, without the kernel setting that inode's ctime to the current time, and nobody in a sandbox
can set it back (that needs the system clock). So at the next reset one walk of the tree tells exactly what
is as Otto left it: a file or symlink is untouched when its ctime is older than the certificate *and* the same
inode is still at the same path (a renamed or swapped directory moves its children without touching them).
Everything else is removed and written anew from Otto's git; directories that stay are put back to their mode
and owner, with no extended attributes, ACLs or inode flags. Git's own stat check is not used for this:
without nanosecond support (Debian's build) it compares times to the second, and an edit in the same second
that keeps the size and restores the mtime would pass it.

The certificate is consumed when a reset starts; a slot without one (a crash mid-reset, another boot, a clock
that went back) is rebuilt from scratch.

The walk is GNU find (one process, in C), or a Python walk where find is missing. Nothing here follows a
symlink: every path is opened component by component with ``O_NOFOLLOW`` from the work tree's root.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import stat
import struct
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

CERTIFICATE = "otto-handover"
REFERENCE = "otto-handover.ref"  # a file whose mtime is the certificate's ctime minus 1 ns (for find)
_WALK_TIMEOUT_S = 300.0
# Inode flags an unprivileged owner may set on a directory (FS_IOC_SETFLAGS), cleared on reset.
_FS_IOC_GETFLAGS = 0x80086601
_FS_IOC_SETFLAGS = 0x40086602
_USER_FLAGS = 0x1 | 0x2 | 0x4 | 0x8 | 0x40 | 0x80 | 0x400 | 0x10000 | 0x20000 | 0x800000 | 0x20000000
_XATTR_PREFIXES = ("user.", "system.posix_acl_")
_KIND = {
    stat.S_IFREG: "f",
    stat.S_IFDIR: "d",
    stat.S_IFLNK: "l",
    stat.S_IFIFO: "p",
    stat.S_IFSOCK: "s",
    stat.S_IFCHR: "c",
    stat.S_IFBLK: "b",
}


class ResetRefused(RuntimeError):
    """The slot can't be reset exactly (its certificate is missing or can't be trusted, or the tree is not
    what the walk saw): build it anew."""


@dataclass(frozen=True)
class Entry:
    """One entry under the work tree as the walk saw it (``path`` relative, ``""`` for the root)."""

    path: str
    kind: str  # find's %y: f d l p s c b
    ino: int
    uid: int
    gid: int


@dataclass
class Scan:
    """The work tree against a certificate: what was touched since, and what wasn't."""

    touched: list[tuple[str, str]] = field(default_factory=list)  # (path, kind)
    files: dict[str, tuple[str, int]] = field(
        default_factory=dict
    )  # untouched non-directories: (kind, inode)
    dirs: set[str] = field(default_factory=set)  # untouched directories


# --------------------------------------------------------------------------------------------- the walk


def _find(root: Path, expression: list[str]) -> list[bytes]:
    """GNU find over ``root`` (never following symlinks or crossing mounts, the sandbox's ``.git`` left
    out); its NUL-separated records. Raises ResetRefused if anything could not be read."""
    find = shutil.which("find")
    assert find is not None
    argv = [find, ".", "-xdev", "-path", "./.git", "-prune", "-o", *expression]
    proc = subprocess.run(
        argv,
        cwd=root,
        capture_output=True,
        timeout=_WALK_TIMEOUT_S,
        check=False,
        env={"LC_ALL": "C", "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    )
    if proc.returncode != 0:
        raise ResetRefused(f"walking the work tree failed: {proc.stderr.decode(errors='replace')[-500:]}")
    return [r for r in proc.stdout.split(b"\0") if r]


def walk(root: Path, use_find: bool | None = None) -> list[Entry]:
    """Every entry under ``root`` (the root itself as ``""``), except the sandbox's ``.git``. ``use_find``:
    None, GNU find where there is one; False, the Python walk."""
    if not _with_find(use_find):
        return [_entry(rel, st) for rel, st in _walk_python(root)]
    out = []
    for record in _find(root, ["-printf", "%y %i %U %G %P\\0"]):
        kind, ino, uid, gid, path = record.split(b" ", 4)
        out.append(Entry(os.fsdecode(path), kind.decode(), int(ino), int(uid), int(gid)))
    return out


def scan(
    root: Path,
    cert: Certificate,
    reference: Path,
    owner: tuple[int, int],
    dir_mode: int,
    use_find: bool | None = None,
) -> Scan:
    """One walk: entries changed at or after the certificate's ctime (``reference``'s mtime is 1 ns before
    it), not owned by ``owner``, directories not in ``dir_mode`` and anything but files, directories and
    symlinks are touched; of the others, files and symlinks with their inode, and directories."""
    result = Scan()
    if not _with_find(use_find):
        for rel, st in _walk_python(root):
            e = _entry(rel, st)
            if (
                st.st_ctime_ns >= cert.ctime_ns
                or (e.uid, e.gid) != owner
                or e.kind not in "fdl"
                or (e.kind == "d" and stat.S_IMODE(st.st_mode) != dir_mode)
            ):
                result.touched.append((rel, e.kind))
            elif e.kind == "d":
                result.dirs.add(rel)
            else:
                result.files[rel] = (e.kind, e.ino)
        return result
    uid, gid = (str(i) for i in owner)
    touched = ["-newercm", str(reference), "-o", "!", "-uid", uid, "-o", "!", "-gid", gid]
    touched += ["-o", "(", "-type", "d", "!", "-perm", f"{dir_mode:o}", ")"]
    touched += ["-o", "(", "!", "-type", "f", "!", "-type", "d", "!", "-type", "l", ")"]
    expression = ["(", *touched, ")", "-printf", "T%y%P\\0"]
    expression += ["-o", "-type", "d", "-printf", "d%P\\0", "-o", "-printf", "%y%i %P\\0"]
    fsdecode = os.fsdecode
    for record in _find(root, expression):
        tag = record[0]
        if tag == 84:  # T
            result.touched.append((fsdecode(record[2:]), chr(record[1])))
        elif tag == 100:  # d
            result.dirs.add(fsdecode(record[1:]))
        else:
            ino, _, path = record[1:].partition(b" ")
            result.files[fsdecode(path)] = (chr(tag), int(ino))
    return result


def _with_find(use_find: bool | None) -> bool:
    return shutil.which("find") is not None if use_find is None else use_find


def _entry(rel: str, st: os.stat_result) -> Entry:
    return Entry(rel, _KIND.get(stat.S_IFMT(st.st_mode), "?"), st.st_ino, st.st_uid, st.st_gid)


def _walk_python(root: Path) -> list[tuple[str, os.stat_result]]:
    top = os.lstat(root)
    out = [("", top)]
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        try:
            with os.scandir(os.path.join(root, rel_dir) if rel_dir else root) as it:
                children = list(it)
        except OSError as exc:
            raise ResetRefused(f"walking the work tree failed: {exc}") from None
        for child in children:
            if not rel_dir and child.name == ".git":
                continue
            rel = f"{rel_dir}/{child.name}" if rel_dir else child.name
            st = child.stat(follow_symlinks=False)
            if st.st_dev != top.st_dev:
                continue
            out.append((rel, st))
            if stat.S_ISDIR(st.st_mode):
                stack.append(rel)
    return out


# --------------------------------------------------------------------------------------------- certificate


@dataclass(frozen=True)
class Certificate:
    sha: str  # the commit the work tree was exactly at
    ctime_ns: int  # the certificate file's ctime: anything changed at or after it is touched
    boot_id: str
    real_ns: int
    boot_ns: int
    inodes: dict[str, int] = field(default_factory=dict)  # every file and symlink: path -> inode


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def write_certificate(git_dir: Path, sha: str, inodes: dict[str, int]) -> None:
    """Record that the work tree is exactly ``sha`` now; call after Otto's last write to the tree."""
    tmp = git_dir / f".{CERTIFICATE}.tmp"
    body = "\0".join(f"{ino} {path}" for path, ino in inodes.items())
    with open(tmp, "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write(body)
        f.flush()
        ctime_ns = os.fstat(f.fileno()).st_ctime_ns
        header = {
            "sha": sha,
            "ctime_ns": ctime_ns,
            "boot_id": _boot_id(),
            "real_ns": time.clock_gettime_ns(time.CLOCK_REALTIME),
            "boot_ns": time.clock_gettime_ns(time.CLOCK_BOOTTIME),
        }
        f.write("\0\0" + json.dumps(header))
    os.replace(tmp, git_dir / CERTIFICATE)


def read_certificate(git_dir: Path) -> Certificate | None:
    """The slot's certificate, or None when there is none or the clock since can't be trusted."""
    try:
        text = (git_dir / CERTIFICATE).read_text(encoding="utf-8", errors="surrogateescape")
        body, _, header_text = text.rpartition("\0\0")
        header = json.loads(header_text)
        cert = Certificate(
            sha=str(header["sha"]),
            ctime_ns=int(header["ctime_ns"]),
            boot_id=str(header["boot_id"]),
            real_ns=int(header["real_ns"]),
            boot_ns=int(header["boot_ns"]),
        )
        for record in body.split("\0") if body else []:
            ino, _, path = record.partition(" ")
            cert.inodes[path] = int(ino)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return cert if clock_trusted(cert) else None


def certified_sha(git_dir: Path) -> str | None:
    """The commit a slot's certificate names (cheap: for choosing a slot, not for trusting it)."""
    try:
        with open(git_dir / CERTIFICATE, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 4096))
            tail = f.read().rpartition(b"\0\0")[2]
        sha = json.loads(tail).get("sha")
    except (OSError, ValueError, AttributeError):
        return None
    return sha if isinstance(sha, str) else None


def clock_trusted(cert: Certificate) -> bool:
    """Same boot, and the wall clock did not go back since the certificate (else a later change could carry
    an older ctime)."""
    if not cert.boot_id or cert.boot_id != _boot_id():
        return False
    real = time.clock_gettime_ns(time.CLOCK_REALTIME) - cert.real_ns
    boot = time.clock_gettime_ns(time.CLOCK_BOOTTIME) - cert.boot_ns
    return real >= 0 and real >= boot - 1_000_000_000


def discard_certificate(git_dir: Path) -> None:
    (git_dir / CERTIFICATE).unlink(missing_ok=True)


def reference(git_dir: Path, cert: Certificate) -> Path:
    """A file whose mtime is 1 ns before the certificate's ctime: ``find -newercm`` it for "at or after"."""
    path = git_dir / REFERENCE
    path.write_bytes(b"")
    os.utime(path, ns=(cert.ctime_ns - 1, cert.ctime_ns - 1))
    return path


# --------------------------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Target:
    """The commit to reset to, from ``git ls-tree -r -t``: blobs (files, symlinks) and directories (trees,
    and gitlinks, which a checkout shows as empty directories)."""

    files: dict[str, str]  # path -> mode ("100644", "100755", "120000")
    dirs: set[str]
    gitlinks: set[str]


@dataclass
class Plan:
    remove_trees: list[str] = field(default_factory=list)  # directories that must go, with what's in them
    unlink: list[str] = field(default_factory=list)  # files, symlinks, FIFOs... that must go
    restore_dirs: list[str] = field(default_factory=list)  # directories that stay: mode, owner, xattrs
    write: list[str] = field(default_factory=list)  # paths git writes from the target commit
    kept: dict[str, int] = field(default_factory=dict)  # untouched files and symlinks kept: path -> inode
    dirs: set[str] = field(default_factory=set)  # directories that stay


def plan_reset(found: Scan, cert: Certificate, target: Target, changed: set[str]) -> Plan:
    """What to remove, restore and write so the tree becomes exactly ``target``. ``changed``: the paths whose
    entry differs between the certified commit and the target (added, modified, type-changed or deleted)."""
    plan = Plan()
    touched_dirs = sorted((p for p, kind in found.touched if kind == "d"), key=lambda p: p.split("/"))
    for path in touched_dirs:
        if path == "" or path in target.dirs:
            plan.restore_dirs.append(path)
            plan.dirs.add(path)
        else:
            plan.remove_trees.append(path)
    for path in sorted(found.dirs, key=lambda p: p.split("/")):
        if path == "" or path in target.dirs:
            plan.dirs.add(path)
        else:
            plan.remove_trees.append(path)
    removed = _outermost(plan.remove_trees)
    plan.remove_trees = sorted(removed, key=lambda p: p.split("/"))
    plan.restore_dirs = [p for p in plan.restore_dirs if not _inside_any(p, removed)]
    plan.dirs = {p for p in plan.dirs if not _inside_any(p, removed)}
    for path, _kind in found.touched:
        if _kind != "d" and not _inside_any(path, removed):
            plan.unlink.append(path)
    for path, (kind, ino) in found.files.items():
        mode = target.files.get(path)
        if (
            mode is not None
            and path not in changed
            and cert.inodes.get(path) == ino
            and kind == ("l" if mode == "120000" else "f")
        ):
            plan.kept[path] = ino
        elif not _inside_any(path, removed):
            plan.unlink.append(path)
    plan.unlink.sort(key=lambda p: p.split("/"))
    plan.write = sorted(
        [p for p in target.files if p not in plan.kept] + [g for g in target.gitlinks if g not in plan.dirs]
    )
    return plan


def _outermost(dirs: list[str]) -> set[str]:
    """The directories of ``dirs`` not inside another of them."""
    chosen: set[str] = set()
    for d in sorted(dirs, key=lambda p: p.count("/")):
        if not _inside_any(d, chosen):
            chosen.add(d)
    return chosen


def _inside_any(path: str, dirs: set[str]) -> bool:
    """Whether a directory leading to ``path`` (not ``path`` itself) is in ``dirs``."""
    if not dirs:
        return False
    head = path.rpartition("/")[0]
    while head:
        if head in dirs:
            return True
        head = head.rpartition("/")[0]
    return False


def _under(path: str, directory: str) -> bool:
    return path.startswith(directory + "/")


# --------------------------------------------------------------------------------------------- doing it


class Tree:
    """Operations on the work tree by relative path, every component opened with ``O_NOFOLLOW``; the
    directories on the current path stay open, so a sorted sequence of paths opens each directory once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._stack: list[tuple[str, int]] = []  # (relative dir, fd), root first

    def __enter__(self) -> Tree:
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        self._stack = [("", fd)]
        return self

    def __exit__(self, *_exc: object) -> None:
        for _rel, fd in self._stack:
            os.close(fd)
        self._stack = []

    def dir_fd(self, rel_dir: str) -> int:
        """An fd of ``rel_dir`` (``""``: the root), reached without following any symlink."""
        while len(self._stack) > 1 and not (
            rel_dir == self._stack[-1][0] or _under(rel_dir, self._stack[-1][0])
        ):
            os.close(self._stack.pop()[1])
        current, fd = self._stack[-1]
        rest = rel_dir[len(current) :].lstrip("/") if current else rel_dir
        for part in rest.split("/") if rest else []:
            child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            current = f"{current}/{part}" if current else part
            self._stack.append((current, child))
            fd = child
        return fd

    def parent(self, rel: str) -> tuple[int, str]:
        head, _, name = rel.rpartition("/")
        return self.dir_fd(head), name

    def lstat(self, rel: str) -> os.stat_result:
        if rel == "":
            return os.fstat(self.dir_fd(""))
        fd, name = self.parent(rel)
        return os.stat(name, dir_fd=fd, follow_symlinks=False)

    def unlink(self, rel: str) -> None:
        fd, name = self.parent(rel)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=fd)

    def remove_tree(self, rel: str) -> None:
        fd, name = self.parent(rel)
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(name, dir_fd=fd)

    def chown(self, rel: str, uid: int, gid: int) -> None:
        if rel == "":
            os.fchown(self.dir_fd(""), uid, gid)
            return
        fd, name = self.parent(rel)
        os.chown(name, uid, gid, dir_fd=fd, follow_symlinks=False)

    def restore_dir(self, rel: str, owner: tuple[int, int] | None, mode: int) -> None:
        """A directory that stays: owner, mode, no user xattrs or ACLs, no inode flags its owner could set."""
        fd = self.dir_fd(rel)
        st = os.fstat(fd)
        if owner is not None and (st.st_uid, st.st_gid) != owner:
            os.fchown(fd, *owner)
        if stat.S_IMODE(st.st_mode) != mode:
            os.fchmod(fd, mode)
        with contextlib.suppress(OSError):
            for name in os.listxattr(fd):
                if name.startswith(_XATTR_PREFIXES):
                    os.removexattr(fd, name)
        with contextlib.suppress(OSError):  # not every filesystem has inode flags
            flags = struct.unpack("i", fcntl.ioctl(fd, _FS_IOC_GETFLAGS, struct.pack("i", 0)))[0]
            if flags & _USER_FLAGS:
                fcntl.ioctl(fd, _FS_IOC_SETFLAGS, struct.pack("i", flags & ~_USER_FLAGS))


def settle(
    tree: Tree, written: Iterable[str], owner: tuple[int, int] | None, known_dirs: set[str]
) -> dict[str, int]:
    """After git wrote ``written`` (and the directories leading to them): hand them to ``owner`` and return
    their inodes (files and symlinks). ``known_dirs``: directories already right (not looked at again)."""
    inodes: dict[str, int] = {}
    for rel in sorted(written):
        head = rel.rpartition("/")[0]
        missing: list[str] = []
        while head not in known_dirs:
            missing.append(head)
            if head == "":
                break
            head = head.rpartition("/")[0]
        for d in reversed(missing):
            st = tree.lstat(d)
            if owner is not None and (st.st_uid, st.st_gid) != owner:
                tree.chown(d, *owner)
            known_dirs.add(d)
        st = tree.lstat(rel)
        if owner is not None and (st.st_uid, st.st_gid) != owner:
            tree.chown(rel, *owner)
        if stat.S_ISDIR(st.st_mode):
            known_dirs.add(rel)  # a gitlink's empty directory
        else:
            inodes[rel] = st.st_ino
    return inodes


def umask() -> int:
    """This process's umask (from /proc: reading it with os.umask would race other threads)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return 0o022
