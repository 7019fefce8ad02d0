"""Otto's benchmarks, run on demand (``make bench`` / ``python -m bench <name> [--quick]``), never in tests.

- ``intake``: webhook intake throughput and latency (ignored events vs a minimal Probot app; durable
  hand-off to Temporal vs the raw ``start_workflow`` rate).
- ``orchestration``: per-task overhead of a 12-task plan on a repository with thousands of files, vs a
  fresh ``git clone`` per task.
- ``concurrency``: 50 runs started together; peak RSS, Temporal history size per run.
- ``tokens``: prompt tokens per task for the demo scenario, and how much the prompt cache served.
- ``agent``: the agent loop on long tasks (scripted model, real sandboxed commands): cache share, cost per
  step, the largest prompt sent.
- ``sandbox``: what running a command in the sandbox costs next to running it bare.
- ``ui``: Mission Control's pages under load (local store or S3).
- ``ops``: start-up, readiness and shutdown times of ``otto serve``.
- ``crash``: recovery times after ``otto serve`` or its Temporal is killed mid-run.
- ``orchestration --setup-only``: task workspace setup alone (fresh clone, cold, warm checkout).

Everything runs on loopback, is bounded in count and duration, and cleans up after itself.
Scratch space: ``.cache/bench/`` (npm's Probot install, the downloaded sdist, per-run directories).
"""
