"""The eval's instance set: real projects from PyPI (their sdists), a real function broken in a commit that
becomes ``base_commit`` (SWE-smith's way), an issue as a user would write it, the restoring diff as
``patch``, new tests as ``test_patch``. ``python -m bench eval-set`` rebuilds the repositories and
``instances.jsonl`` deterministically and checks every instance."""
