"""How many tests failed, read from a test runner's output.

Understands pytest, unittest, jest, vitest, go test and cargo test. When a log holds several runs (or
several runners), the summary that appears last wins. ``None`` means no summary was recognised.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from app.domain.terminal import plain_text

# --- pytest: "=== 2 failed, 3 passed in 0.12s ===" (with -q: the same without the "=" rule) -------------
_PYTEST_ITEM = r"(?:\d+ [a-z]+(?: [a-z]+)?|no tests ran)"
_PYTEST = re.compile(
    rf"^=*[ \t]*(?P<body>{_PYTEST_ITEM}(?:, {_PYTEST_ITEM})*) in \d+(?:\.\d+)?s"
    r"(?: \([0-9:.]+\))?[ \t]*=*[ \t]*$",
    re.M,
)
_PYTEST_COUNT = re.compile(r"(\d+) ([a-z]+(?: [a-z]+)?)")

# --- unittest: "Ran 3 tests in 0.001s" then "OK" or "FAILED (failures=1, errors=1)" ------------------
_UNITTEST = re.compile(
    r"^Ran \d+ tests? in [\d.]+s[ \t]*\n[ \t]*\n(?P<verdict>OK\b.*|FAILED \((?P<body>.*)\))$", re.M
)

# --- jest: "Tests:       2 failed, 5 passed, 7 total" ----------------------------------------------------
_JEST = re.compile(r"^[ \t]*Tests:[ \t]+(?P<body>.*\b\d+ total)[ \t]*$", re.M)
_JEST_SUITES = re.compile(r"^[ \t]*Test Suites:[ \t]+(?P<body>.*\b\d+ total)[ \t]*$", re.M)

# --- vitest: " Tests  2 failed | 5 passed (7)" ----------------------------------------------------------
_VITEST = re.compile(r"^[ \t]*Tests[ \t]+(?P<body>\d+ [a-z]+(?: \| \d+ [a-z]+)*)[ \t]+\(\d+\)[ \t]*$", re.M)
_VITEST_FILES = re.compile(
    r"^[ \t]*Test Files[ \t]+(?P<body>\d+ [a-z]+(?: \| \d+ [a-z]+)*)[ \t]+\(\d+\)[ \t]*$", re.M
)

# --- go test: "--- FAIL: TestX (0.00s)" and package lines "ok  \tpkg\t0.1s" / "FAIL\tpkg\t0.1s" ----------
_GO_FAIL = re.compile(r"^[ \t]*--- FAIL: (?P<name>\S+)", re.M)
_GO_PKG = re.compile(r"^(?P<verdict>ok|FAIL)[ \t]+(?P<pkg>\S+)(?:[ \t].*)?$", re.M)

# --- cargo test: "test result: FAILED. 3 passed; 2 failed; 0 ignored; ..." ----------------------------
_CARGO = re.compile(r"^test result: (?:ok|FAILED)\. \d+ passed; (?P<failed>\d+) failed;", re.M)
_CARGO_RUN_START = re.compile(r"^[ \t]*Finished\b", re.M)


def _last(pattern: re.Pattern[str], text: str, end: int | None = None) -> re.Match[str] | None:
    last = None
    for m in pattern.finditer(text, 0, len(text) if end is None else end):
        last = m
    return last


def _count(body: str, pattern: re.Pattern[str], words: set[str]) -> int:
    return sum(int(n) for n, word in pattern.findall(body) if word in words)


def _pytest(log: str) -> tuple[int, int] | None:
    last = _last(_PYTEST, log)
    if last is None:
        return None
    return last.start(), _count(last["body"], _PYTEST_COUNT, {"failed", "error", "errors"})


def _unittest(log: str) -> tuple[int, int] | None:
    last = _last(_UNITTEST, log)
    if last is None:
        return None
    if last["body"] is None:
        return last.start("verdict"), 0
    counts = re.findall(r"(failures|errors)=(\d+)", last["body"])
    return last.start("verdict"), sum(int(n) for _, n in counts)


def _jest(log: str) -> tuple[int, int] | None:
    last = _last(_JEST, log)
    if last is None:
        return None
    failed = sum(int(n) for n in re.findall(r"(\d+) failed", last["body"]))
    if failed == 0:
        # A suite that fails to load (syntax error, missing module) runs no tests but still fails.
        suites = _last(_JEST_SUITES, log, last.start())
        if suites is not None:
            failed = sum(int(n) for n in re.findall(r"(\d+) failed", suites["body"]))
    return last.start(), failed


def _vitest(log: str) -> tuple[int, int] | None:
    last = _last(_VITEST, log)
    if last is None:
        return None
    failed = sum(int(n) for n in re.findall(r"(\d+) failed", last["body"]))
    if failed == 0:
        files = _last(_VITEST_FILES, log, last.start())
        if files is not None:
            failed = sum(int(n) for n in re.findall(r"(\d+) failed", files["body"]))
    return last.start(), failed


def _go(log: str) -> tuple[int, int] | None:
    pkgs = list(_GO_PKG.finditer(log))
    fails = list(_GO_FAIL.finditer(log))
    if not pkgs and not fails:
        return None
    # A package reported twice means a second run started: keep only the last run.
    start = 0
    seen: set[str] = set()
    for i, m in enumerate(pkgs):
        if m["pkg"] in seen:
            start = pkgs[i - 1].end()
            seen = set()
        seen.add(m["pkg"])
    run_pkgs = [m for m in pkgs if m.start() >= start]
    names = [m["name"] for m in fails if m.start() >= start]
    # Count leaves: a parent test fails whenever one of its subtests does.
    leaves = [n for n in names if not any(o.startswith(n + "/") for o in names)]
    position = max([m.start() for m in run_pkgs] + [m.start() for m in fails if m.start() >= start])
    if leaves:
        return position, len(leaves)
    failed_pkgs = sum(1 for m in run_pkgs if m["verdict"] == "FAIL")
    return position, failed_pkgs  # build failure or panic: at least one failure per failed package


def _cargo(log: str) -> tuple[int, int] | None:
    results = list(_CARGO.finditer(log))
    if not results:
        return None
    last = results[-1]
    starts = [m.start() for m in _CARGO_RUN_START.finditer(log, 0, last.start())]
    start = starts[-1] if starts else 0
    return last.start(), sum(int(m["failed"]) for m in results if m.start() >= start)


_PARSERS: list[Callable[[str], tuple[int, int] | None]] = [_pytest, _unittest, _jest, _vitest, _go, _cargo]


def parse_failure_count(log: str) -> int | None:
    """Failed (and errored) tests in the last test summary found in ``log``; ``None`` if none is found."""
    text = plain_text(log)
    found = [r for r in (parse(text) for parse in _PARSERS) if r is not None]
    if not found:
        return None
    return max(found, key=lambda r: r[0])[1]
