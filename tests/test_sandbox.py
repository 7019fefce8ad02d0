"""The sandbox itself: what a command can see, reach and use up (real bubblewrap, real processes)."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.dev.local import LocalWorld
from app.domain.egress import egress_verdict
from app.sandbox import Mounts, Sandbox, SandboxConfig
from app.sandbox.egress import EgressProxy
from app.sandbox.runner import find_bwrap
from tests.sandboxing import make_mounts, make_sandbox, running_registry, traversable

FETCH = (
    'python3 -c "import sys, urllib.request\n'
    "try:\n    print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())\n"
    "except Exception as e:\n    print('FAILED', e)\" "
)


@pytest.fixture
def registry() -> Iterator[str]:
    with running_registry() as server:
        yield server.url + "/simple/"


def sandbox_with_egress(tmp_path: Path, allow: list[str]) -> Sandbox:
    tmp_path.mkdir(exist_ok=True)
    base = make_sandbox(tmp_path)
    proxy = EgressProxy(tmp_path / "egress", allow)
    return Sandbox(base.config, proxy)


def test_a_command_sees_only_the_system_its_workspace_and_its_tools(tmp_path: Path) -> None:
    sandbox = make_sandbox(tmp_path)
    work = tmp_path / "w"
    work.mkdir()
    (work / "mine.txt").write_text("mine\n")
    out = sandbox.run(
        "ls /; cat mine.txt; ls /proc | grep -c '^[0-9]'; id -u; test -e /etc/shadow && wc -c < /etc/shadow",
        mounts=make_mounts(sandbox, work),
        timeout_s=20,
        output_limit=10_000,
    ).output
    top = set(out.split("\n\n")[0].split()) if "\n\n" in out else set(out.split())
    assert "mine" in out
    for hidden in ("root", "work", "opt", "srv", "mnt"):
        assert hidden not in top  # none of the host's other directories exist inside
    assert "\n0\n" in out  # the shadow file is masked: empty


def test_masked_paths_are_empty_even_inside_a_visible_directory(tmp_path: Path) -> None:
    tools = tmp_path / "tools"
    (tools / "bin").mkdir(parents=True)
    key = tools / "app.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\nsecret\n")
    secret_dir = tools / "secrets"
    secret_dir.mkdir()
    (secret_dir / "token").write_text("t0ken")
    traversable(tools)
    base = make_sandbox(tmp_path)
    config = SandboxConfig(**{**base.config.__dict__, "tools": (tools,), "masks": (key, secret_dir)})
    sandbox = Sandbox(config)
    work = tmp_path / "w"
    out = sandbox.run(
        f"cat {key}; ls {secret_dir}; ls {tools}",
        mounts=make_mounts(sandbox, work),
        timeout_s=20,
        output_limit=10_000,
    ).output
    assert "BEGIN PRIVATE KEY" not in out
    assert "t0ken" not in out
    assert "token" not in out
    assert out.split() == ["app.pem", "bin", "secrets"]  # masked: an empty file, an empty directory


def test_no_network_unless_given_and_then_only_through_the_filtering_proxy(
    tmp_path: Path, registry: str
) -> None:
    port = registry.split(":")[2].split("/")[0]
    sandbox = sandbox_with_egress(tmp_path, allow=[])
    mounts = make_mounts(sandbox, tmp_path / "w")
    offline = sandbox.run(FETCH + registry, mounts=mounts, timeout_s=30, output_limit=10_000)
    assert "FAILED" in offline.output
    assert "hello" not in offline.output
    online = sandbox.run(FETCH + registry, mounts=mounts, timeout_s=30, output_limit=10_000, network=True)
    assert "FAILED" in online.output
    assert "403" in online.output
    meta = FETCH + "http://169.254.169.254/latest/meta-data/"
    metadata = sandbox.run(meta, mounts=mounts, timeout_s=30, output_limit=10_000, network=True)
    assert "403" in metadata.output
    allowed = sandbox_with_egress(tmp_path / "b", allow=[f"127.0.0.1/32:{port}"])
    b_mounts = make_mounts(allowed, tmp_path / "b" / "w")
    fetched = allowed.run(FETCH + registry, mounts=b_mounts, timeout_s=30, output_limit=10_000, network=True)
    assert "hello from the registry" in fetched.output


def test_limits_end_the_command_not_otto(tmp_path: Path) -> None:
    sandbox = make_sandbox(tmp_path, memory_mb=256, pids=32)
    mounts = make_mounts(sandbox, tmp_path / "w")
    hog = sandbox.run("python3 -c 'x = bytearray(1 << 30)'", mounts=mounts, timeout_s=30, output_limit=10_000)
    assert hog.exit_code != 0
    assert "memory limit (256 MiB)" in hog.note or "MemoryError" in hog.output
    bomb = sandbox.run(
        "python3 -c 'import os, time\nfor _ in range(1000):\n    os.fork() or time.sleep(5)'; echo over",
        mounts=mounts,
        timeout_s=30,
        output_limit=10_000,
    )
    assert "over" in bomb.output
    assert "process limit (32)" in bomb.note or "fork" in bomb.output.lower()
    big = sandbox.run(
        "head -c 5000000 /dev/zero > big; echo wrote", mounts=mounts, timeout_s=30, output_limit=10_000
    )
    assert "wrote" in big.output  # ordinary files are fine


@pytest.mark.skipif(os.geteuid() != 0, reason="as root, commands run as another uid")
def test_as_root_commands_run_as_an_unprivileged_uid(tmp_path: Path) -> None:
    sandbox = make_sandbox(tmp_path)
    work = tmp_path / "w"
    sandbox.run("touch made-here", mounts=make_mounts(sandbox, work), timeout_s=20, output_limit=1000)
    assert (work / "made-here").stat().st_uid == 65534


def test_an_unusable_sandbox_is_refused_with_what_to_do(tmp_path: Path) -> None:
    sandbox = Sandbox(SandboxConfig(bwrap_path=str(tmp_path / "no-bwrap"), probe_dir=tmp_path / "p"))
    work = tmp_path / "w"
    work.mkdir()
    with pytest.raises(Exception, match="bubblewrap could not start a sandbox here") as info:
        sandbox.run("true", mounts=Mounts(work, work, work), timeout_s=5, output_limit=100)
    assert "seccomp=unconfined" in str(info.value)
    assert "OTTO_SANDBOX=off" in str(info.value)
    assert find_bwrap(None) is not None  # the packaged bwrap is found without configuration


@pytest.mark.parametrize(
    ("host", "ip", "port", "allow", "allowed"),
    [
        ("pypi.org", "151.101.0.223", 443, [], True),
        ("evil.example", "127.0.0.1", 443, [], False),
        ("evil.example", "10.1.2.3", 443, [], False),
        ("evil.example", "169.254.169.254", 80, [], False),
        ("evil.example", "::ffff:127.0.0.1", 80, [], False),
        ("evil.example", "100.64.0.1", 80, [], False),
        ("registry.corp", "10.1.2.3", 443, ["registry.corp"], True),
        ("registry.corp", "10.1.2.3", 8443, ["registry.corp:443"], False),
        ("a.corp.example", "10.9.9.9", 443, ["*.corp.example"], True),
        ("corp.example", "10.9.9.9", 443, ["*.corp.example"], False),
        ("anything", "10.20.3.4", 443, ["10.20.0.0/16"], True),
        ("anything", "10.20.3.4", 443, ["10.20.0.0/16:8080"], False),
        ("anything", "10.20.3.4", 8080, ["10.20.0.0/16:8080"], True),
    ],
)
def test_egress_verdicts(host: str, ip: str, port: int, allow: list[str], allowed: bool) -> None:
    assert egress_verdict(host, ipaddress.ip_address(ip), port, allow).allowed is allowed


def test_a_relative_data_dir_still_gets_a_working_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`otto demo` and a `.env` with `OTTO_DATA_DIR=.otto` name the data dir relative to the working
    directory; bubblewrap binds only absolute paths, so the settings make it absolute (the demo's sandbox
    probe failed on a relative one)."""
    from app.sandbox import sandbox_from_settings
    from app.settings import Settings

    traversable(tmp_path)
    monkeypatch.chdir(tmp_path)
    settings = Settings(_env_file=None, data_dir=Path("rel/otto"), sandbox_tools=LocalWorld.sandbox_tools)
    assert settings.data_dir == tmp_path / "rel" / "otto"
    settings.checkouts_dir.mkdir(parents=True)
    traversable(settings.checkouts_dir)
    sandbox = sandbox_from_settings(settings)
    sandbox.ensure_available()  # the probe binds a directory under the checkouts
    work = settings.checkouts_dir / "w"
    work.mkdir()
    result = sandbox.run("pwd", mounts=make_mounts(sandbox, work), timeout_s=10, output_limit=1000)
    assert result.exit_code == 0, result.output
