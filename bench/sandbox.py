"""What the sandbox costs per command: the same commands run plain (own process group, scrubbed
environment: Otto's runner without bubblewrap) and inside the sandbox (bubblewrap, namespaces, cgroup,
rlimits, unprivileged uid), alternating, on the same machine in the same run.

``python -m bench sandbox [--quick]``. Prints median / p90 per command and the overhead; the instrument is
``time.perf_counter`` around each whole command (the command's own work is the same on both sides).
"""

from __future__ import annotations

import os
import statistics
import tempfile
from pathlib import Path

from app.dev.local import LocalWorld
from app.sandbox import Limits, Mounts, Sandbox, SandboxConfig
from app.sandbox.proc import DEFAULT_PATH, run_bounded
from app.sandbox.runner import find_bwrap

COMMANDS = {
    "true": "true",
    "ls -la": "ls -la",
    "python3 -c pass": "python3 -c pass",
    "git status": "git status --porcelain >/dev/null",
}


def _sandbox(root: Path) -> Sandbox:
    root_uid = os.geteuid() == 0
    sandbox = Sandbox(
        SandboxConfig(
            bwrap_path=find_bwrap(None),
            tools=tuple(LocalWorld.sandbox_tools),
            limits=Limits(),
            uid=65534 if root_uid else None,
            gid=65534 if root_uid else None,
            uid_explicit=True,
            probe_dir=root / "probe",
        )
    )
    sandbox.ensure_available()
    return sandbox


def main(flags: list[str]) -> int:
    rounds = 20 if "--quick" in flags else 100
    with tempfile.TemporaryDirectory(prefix="otto-bench-sandbox-", dir="/var/tmp") as d:
        root = Path(d)
        os.chmod(root, 0o755)  # noqa: S103 - the sandbox's uid binds from here
        sandbox = _sandbox(root)
        work, home, tmp = root / "w", root / "h", root / "t"
        for p in (work, home, tmp):
            p.mkdir()
        os.system(f"git init -q {work} && cd {work} && touch a b c && git add -A")  # noqa: S605
        if sandbox.owner:
            for p in [home, tmp, *work.rglob("*"), work]:
                os.lchown(p, *sandbox.owner)
        mounts = Mounts(work, home, tmp)
        plain_env = {"PATH": DEFAULT_PATH, "HOME": str(home), "TMPDIR": str(tmp), "LANG": "C.UTF-8"}
        print(
            f"{rounds} runs of each command, alternating plain and sandboxed; load {os.getloadavg()[0]:.2f}"
        )
        print(
            f"{'command':<18} {'plain p50':>10} {'sandbox p50':>12} {'overhead p50':>13} {'sandbox p90':>12}"
        )
        overheads = []
        for name, command in COMMANDS.items():
            plain: list[float] = []
            boxed: list[float] = []
            for _ in range(rounds):
                plain.append(
                    run_bounded(
                        ["bash", "-c", command], cwd=work, env=plain_env, timeout_s=30, output_limit=10_000
                    ).duration_s
                )
                boxed.append(
                    sandbox.run(command, mounts=mounts, timeout_s=30, output_limit=10_000).duration_s
                )
            p50, s50 = statistics.median(plain), statistics.median(boxed)
            s90 = statistics.quantiles(boxed, n=10)[-1]
            overheads.append(s50 - p50)
            ms = [p50 * 1000, s50 * 1000, (s50 - p50) * 1000, s90 * 1000]
            print(f"{name:<18} {ms[0]:>8.1f}ms {ms[1]:>10.1f}ms {ms[2]:>11.1f}ms {ms[3]:>10.1f}ms")
        print(
            f"median sandbox overhead per command: {statistics.median(overheads) * 1000:.1f} ms "
            "(namespaces + mounts + cgroup setup/teardown; limited by process creation on this machine)"
        )
    return 0
