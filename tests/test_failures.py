"""Failure counts from test-runner output, and bounded text (app/domain/failures.py, app/domain/logs.py)."""

from __future__ import annotations

import re

import pytest

from app.domain.failures import parse_failure_count
from app.domain.logs import HeadTailBuffer, bound_text, head, tail, utf8_len

# --- pytest -------------------------------------------------------------------------------------------------

PYTEST_VERBOSE = """\
============================= test session starts ==============================
platform linux -- Python 3.11.7, pytest-9.0.1, pluggy-1.6.0
rootdir: /tmp/repo
configfile: pyproject.toml
collected 5 items

tests/test_calc.py ..F.E                                                 [100%]

==================================== ERRORS ====================================
_________________________ ERROR at setup of test_five __________________________
E       RuntimeError: boom
=================================== FAILURES ===================================
__________________________________ test_three __________________________________

    def test_three():
>       assert add(1, 1) == 3
E       assert 2 == 3

tests/test_calc.py:12: AssertionError
=========================== short test summary info ============================
FAILED tests/test_calc.py::test_three - assert 2 == 3
ERROR tests/test_calc.py::test_five - RuntimeError: boom
================ 1 failed, 3 passed, 1 error in 0.12s =================
"""

PYTEST_QUIET = """\
..F                                                                      [100%]
=================================== FAILURES ===================================
____________________________________ test_b ____________________________________

    def test_b():
>       assert 0
E       assert 0

test_x.py:5: AssertionError
=========================== short test summary info ============================
FAILED test_x.py::test_b - assert 0
1 failed, 2 passed in 0.03s
"""


@pytest.mark.parametrize(
    ("log", "expected"),
    [
        (PYTEST_VERBOSE, 2),
        (PYTEST_QUIET, 1),
        ("....\n4 passed in 0.02s\n", 0),
        ("===== 5 passed, 2 warnings in 62.31s (0:01:02) =====\n", 0),
        ("============================ no tests ran in 0.01s =============================\n", 0),
        (
            "!!!! Interrupted: 2 errors during collection !!!!\n======= 2 errors in 0.20s =======\n",
            2,
        ),
        ("3 failed, 1 passed, 1 xfailed, 2 subtests passed in 1.50s\n", 3),
        ("1 passed, 1 deselected in 0.01s\n", 0),
    ],
)
def test_pytest(log: str, expected: int) -> None:
    assert parse_failure_count(log) == expected


def test_pytest_last_run_wins() -> None:
    log = PYTEST_VERBOSE + "\n$ python -m pytest -q\n" + "....\n5 passed in 0.10s\n"
    assert parse_failure_count(log) == 0
    assert parse_failure_count("5 passed in 0.1s\n" + PYTEST_QUIET) == 1


def test_unittest() -> None:
    log = """\
..F
======================================================================
FAIL: test_x (test_m.T.test_x)
----------------------------------------------------------------------
Traceback (most recent call last):
AssertionError: 1 != 2

----------------------------------------------------------------------
Ran 3 tests in 0.001s

FAILED (failures=1, errors=2)
"""
    assert parse_failure_count(log) == 3
    assert parse_failure_count("...\n---\nRan 3 tests in 0.001s\n\nOK\n") == 0


# --- jest / vitest ------------------------------------------------------------------------------------------

JEST = """\
 PASS  src/util.test.js
 FAIL  src/sum.test.js
  ● sum › adds two numbers

    expect(received).toBe(expected) // Object.is equality

    Expected: 4
    Received: 5

Test Suites: 1 failed, 1 passed, 2 total
Tests:       2 failed, 5 passed, 7 total
Snapshots:   0 total
Time:        1.234 s
Ran all test suites.
"""

JEST_SUITE_ERROR = """\
 FAIL  src/broken.test.js
  ● Test suite failed to run

    SyntaxError: Unexpected token (3:4)

Test Suites: 1 failed, 1 total
Tests:       0 total
Snapshots:   0 total
Time:        0.5 s
"""

VITEST = """\
 ❯ src/sum.test.ts (3 tests | 2 failed) 5ms
   × sum > adds
     → expected 5 to be 4

 Test Files  1 failed | 1 passed (2)
      Tests  2 failed | 5 passed (7)
   Start at  10:00:00
   Duration  512ms (transform 20ms, setup 0ms, collect 30ms, tests 5ms)
"""

VITEST_ANSI = (
    " \x1b[2m Test Files \x1b[22m \x1b[1m\x1b[31m1 failed\x1b[39m\x1b[22m\x1b[90m (1)\x1b[39m\n"
    "\x1b[2m      Tests \x1b[22m \x1b[1m\x1b[31m3 failed\x1b[39m\x1b[22m\x1b[2m | \x1b[22m"
    "\x1b[1m\x1b[32m1 passed\x1b[39m\x1b[22m\x1b[90m (4)\x1b[39m\n"
)


@pytest.mark.parametrize(
    ("log", "expected"),
    [
        (JEST, 2),
        (JEST_SUITE_ERROR, 1),
        ("Test Suites: 2 passed, 2 total\nTests:       1 skipped, 9 passed, 10 total\n", 0),
        (VITEST, 2),
        (VITEST_ANSI, 3),
        (" Test Files  2 passed (2)\n      Tests  7 passed (7)\n", 0),
    ],
)
def test_js(log: str, expected: int) -> None:
    assert parse_failure_count(log) == expected


# --- go -----------------------------------------------------------------------------------------------------

GO_FAILING = """\
=== RUN   TestAdd
--- PASS: TestAdd (0.00s)
=== RUN   TestSub
    math_test.go:12: got 1, want 2
--- FAIL: TestSub (0.00s)
=== RUN   TestTable
=== RUN   TestTable/a
=== RUN   TestTable/b
    math_test.go:20: bad
--- FAIL: TestTable (0.00s)
    --- PASS: TestTable/a (0.00s)
    --- FAIL: TestTable/b (0.00s)
FAIL
FAIL\texample.com/m/math\t0.002s
ok  \texample.com/m/str\t0.001s
?   \texample.com/m/cmd\t[no test files]
FAIL
"""

GO_PASSING = "ok  \texample.com/m/math\t0.002s\nok  \texample.com/m/str\t(cached)\n"

GO_BUILD_FAILED = """\
# example.com/m/math [example.com/m/math.test]
./math.go:3:1: syntax error: non-declaration statement outside function body
FAIL\texample.com/m/math [build failed]
ok  \texample.com/m/str\t0.001s
FAIL
"""


@pytest.mark.parametrize(
    ("log", "expected"),
    [
        (GO_FAILING, 2),  # TestSub and TestTable/b (TestTable fails because of its subtest)
        (GO_PASSING, 0),
        (GO_BUILD_FAILED, 1),
        (GO_FAILING + GO_PASSING, 0),  # a second run of the same packages: the last one counts
        (GO_PASSING + GO_FAILING, 2),
    ],
)
def test_go(log: str, expected: int) -> None:
    assert parse_failure_count(log) == expected


# --- cargo --------------------------------------------------------------------------------------------------

CARGO = """\
   Compiling calc v0.1.0 (/tmp/calc)
    Finished `test` profile [unoptimized + debuginfo] target(s) in 0.52s
     Running unittests src/lib.rs (target/debug/deps/calc-3f2a)

running 5 tests
test tests::a ... ok
test tests::b ... FAILED
test tests::c ... FAILED

failures:
    tests::b
    tests::c

test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s

     Running tests/integration.rs (target/debug/deps/integration-9c1d)

running 2 tests
test it_works ... FAILED
test it_also_works ... ok

test result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s

   Doc-tests calc

running 0 tests

test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s

error: 2 targets failed:
    `--lib`
    `--test integration`
"""

CARGO_PASSING = """\
    Finished `test` profile [unoptimized + debuginfo] target(s) in 0.10s
     Running unittests src/lib.rs (target/debug/deps/calc-3f2a)

running 5 tests
test result: ok. 5 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s
"""


def test_cargo_sums_the_results_of_one_run() -> None:
    assert parse_failure_count(CARGO) == 3
    assert parse_failure_count(CARGO_PASSING) == 0
    assert parse_failure_count(CARGO + CARGO_PASSING) == 0
    assert parse_failure_count(CARGO_PASSING + CARGO) == 3


def test_cargo_compile_error_has_no_summary() -> None:
    log = "   Compiling calc v0.1.0\nerror[E0425]: cannot find value `x`\nerror: could not compile `calc`\n"
    assert parse_failure_count(log) is None


# --- general ------------------------------------------------------------------------------------------------


def test_last_summary_wins_across_runners() -> None:
    assert parse_failure_count(PYTEST_QUIET + JEST) == 2
    assert parse_failure_count(JEST + PYTEST_QUIET) == 1
    assert parse_failure_count(CARGO + "\n" + GO_PASSING) == 0


@pytest.mark.parametrize(
    "log",
    ["", "make: *** [Makefile:3: lint] Error 1\n", "All checks passed!\n", "Compiling...\nerror: boom\n"],
)
def test_no_summary(log: str) -> None:
    assert parse_failure_count(log) is None


def test_crlf_logs() -> None:
    assert parse_failure_count(PYTEST_QUIET.replace("\n", "\r\n")) == 1


# --- bounded text -------------------------------------------------------------------------------------------

_MARKER = re.compile(r"… \[(\d+) bytes omitted\] …\n")


def _check_bounded(original: str, bounded: str, limit: int) -> None:
    assert utf8_len(bounded) <= limit
    m = _MARKER.search(bounded)
    assert m is not None
    head_part = bounded[: m.start()]
    if not original.startswith(head_part):  # a newline was added before the marker
        assert head_part.endswith("\n")
        head_part = head_part[:-1]
    tail_part = bounded[m.end() :]
    assert original.startswith(head_part)
    assert original.endswith(tail_part)
    omitted = int(m.group(1))
    assert utf8_len(head_part) + omitted + utf8_len(tail_part) == utf8_len(original)
    assert "\ufffd" not in bounded


def test_bound_text_short_text_unchanged() -> None:
    assert bound_text("hello\n", 100) == "hello\n"
    assert bound_text("", 0) == ""


def test_bound_text_keeps_head_and_tail_and_counts_exactly() -> None:
    text = "".join(f"line {i}\n" for i in range(10_000))
    out = bound_text(text, 1000)
    _check_bounded(text, out, 1000)
    assert out.startswith("line 0\n")
    assert out.endswith("line 9999\n")


def test_bound_text_never_splits_multibyte_characters() -> None:
    for text in ("é" * 5000, "日本語のテキスト" * 700, "a😀" * 3000, "x" + "é" * 2000):
        for limit in (101, 102, 103, 500, 999):
            _check_bounded(text, bound_text(text, limit), limit)


def test_bound_text_without_newlines_and_head_fraction() -> None:
    text = "a" * 10_000 + "b" * 10_000
    out = bound_text(text, 1000, head_fraction=0.25)
    _check_bounded(text, out, 1000)
    m = _MARKER.search(out)
    assert m is not None
    assert out[: m.start()].count("a") < out[m.end() :].count("b")


def test_tail_and_head() -> None:
    assert tail("abcdef", 3) == "def"
    assert tail("abc", 10) == "abc"
    assert tail("ééé", 3) == "é"  # 6 bytes; the last 3 start mid-character
    assert head("ééé", 3) == "é"
    assert head("abcdef", 2) == "ab"


def test_head_tail_buffer_matches_bound_text() -> None:
    text = "".join(f"{i} ünïcödé line\n" for i in range(5000))
    data = text.encode()
    buf = HeadTailBuffer(777)
    step = 1
    i = 0
    while i < len(data):
        buf.feed(data[i : i + step])
        i += step
        step = step * 3 % 1013 + 1
    assert buf.total == len(data)
    assert buf.text() == bound_text(text, 777)
    small = HeadTailBuffer(100)
    small.feed(b"short")
    assert small.text() == "short"
