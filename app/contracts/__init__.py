"""Contracts without I/O: what workflows, activities, handlers and the web UI agree on.

- :mod:`~app.contracts.ids`: workflow ids and names derived from a run (one place each);
- :mod:`~app.contracts.failures`: the kinds of failure an activity reports and the workflows act on;
- :mod:`~app.contracts.activities`: every activity declared once — its name, task queue, input, output and
  call options — so a workflow calls it by name without importing its implementation;
- :mod:`~app.contracts.messages`: the run workflow's signals, updates and query, typed end to end;
- :mod:`~app.contracts.io`: the activities' inputs and outputs.

Layering (enforced by import-linter): ``app.domain`` (pure models and decisions) < ``app.contracts`` <
workflows, activities, handlers, web. Nothing here does I/O.
"""
