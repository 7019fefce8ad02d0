"""``python -m bench <name|all> [--quick]``, names: intake, orchestration, concurrency, tokens, agent,
sandbox, ui, ops, crash (see ``bench/__init__.py``); ``ui --s3`` puts Mission Control's store on S3 (moto);
``orchestration --setup-only`` measures workspace setup alone; ``screenshots`` (not in ``all``) renews the
README's pictures; ``eval`` (not in ``all``) runs Otto over the eval's instance set, ``eval-set`` rebuilds
and re-checks that set."""

from __future__ import annotations

import importlib
import sys
import time

NAMES = ["intake", "orchestration", "concurrency", "tokens", "agent", "sandbox", "ui", "ops", "crash"]
EXTRA = ["screenshots", "eval", "eval-set"]
USAGE = f"usage: python -m bench <{'|'.join([*NAMES, 'all', *EXTRA])}> [--quick] [--s3]"


def main(argv: list[str]) -> int:
    args = [a for a in argv if not a.startswith("-")]
    flags = [a for a in argv if a.startswith("-")]
    if "-h" in flags or "--help" in flags:
        print(USAGE)
        return 0
    unknown = [f for f in flags if f not in ("--quick", "--s3", "--setup-only")]
    if unknown or len(args) > 1 or (args and args[0] not in [*NAMES, "all", *EXTRA]):
        print(USAGE, file=sys.stderr)
        return 2
    names = NAMES if not args or args[0] == "all" else [args[0]]
    worst = 0
    for name in names:
        started = time.monotonic()
        print(f"\n=== bench {name}{' ' + ' '.join(flags) if flags else ''} ===", flush=True)
        module = importlib.import_module(f"bench.{'eval' if name == 'eval-set' else name}")
        code: int = (module.main_set if name == "eval-set" else module.main)(flags)
        print(f"=== bench {name}: {time.monotonic() - started:.0f}s, exit {code} ===", flush=True)
        worst = max(worst, code)
        if code == 130:  # interrupted: don't go on with the others
            break
    return worst


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
