"""One module per GitHub event: it registers its handlers on a module-level ``routes`` (see
``app.routing``) with the (event, action) pairs it acts on and the payload model each needs. Handlers
parse, authorize cheaply and hand off to Temporal; nothing slow.

Adding an event is adding a module here: every module of this package is imported and its ``routes``
merged into :data:`ROUTES`, the table the intake consults.
"""

from __future__ import annotations

import importlib
import pkgutil

from app.routing import Routes


def discover(package: str = __name__) -> Routes:
    """Import every module of ``package`` and merge the ``routes`` each defines (in name order)."""
    merged = Routes()
    root = importlib.import_module(package)
    for info in sorted(pkgutil.iter_modules(root.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{package}.{info.name}")
        routes = getattr(module, "routes", None)
        if isinstance(routes, Routes):
            merged.include(routes)
    return merged


ROUTES: Routes = discover()
