"""Which handler acts on which GitHub (event, action), and the payload model it needs.

Each module in ``handlers/`` owns a :class:`Routes` and registers its handlers with a decorator::

    routes = Routes()

    @routes.register("issues", action="labeled")
    async def labeled(ctx: HandlerContext, event: IssuesLabeled) -> Outcome: ...

The payload model is the annotation of the handler's second parameter (or ``model=``): the intake validates
the delivery into it before calling the handler, and answers 400 when a field the model needs is missing.
``handlers`` merges every module's routes into one table; the intake consults it to answer 202 to any
(event, action) nobody registered, before it parses the body. Nothing here does I/O.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel

from app.contracts.messages import DeliveryRequest
from app.settings import Settings


@dataclass(frozen=True)
class Outcome:
    """The answer to a delivery. ``quiet`` outcomes (ignored deliveries) are logged at debug level only."""

    status: int
    message: str
    quiet: bool = False


def ignored(reason: str) -> Outcome:
    """202: verified, and nothing for Otto to do."""
    return Outcome(202, f"ignored: {reason}", quiet=True)


IGNORED = Outcome(202, "ignored", quiet=True)
DUPLICATE = Outcome(200, "duplicate delivery: already accepted")


class HandoffUnavailable(Exception):
    """The engine could not take the delivery now (the intake answers 503; GitHub's redelivery works)."""


class Handoff(Protocol):
    """Durable hand-off to the engine. Returns False when this delivery was already accepted."""

    async def submit(self, delivery_id: str, request: DeliveryRequest) -> bool: ...


@dataclass(frozen=True)
class HandlerContext:
    settings: Settings
    handoff: Handoff
    delivery_id: str
    event: str

    async def hand_off(self, request: DeliveryRequest, accepted: str) -> Outcome:
        """Hand ``request`` to the engine: 202 ``accepted`` the first time, 200 for a redelivery."""
        if await self.handoff.submit(self.delivery_id, request):
            return Outcome(202, accepted)
        return DUPLICATE


Handler = Callable[[HandlerContext, Any], Awaitable[Outcome]]
H = TypeVar("H", bound=Callable[..., Awaitable[Outcome]])


@dataclass(frozen=True)
class Route:
    event: str
    action: str | None  # None: every action of the event (and deliveries without one)
    model: type[BaseModel]
    handler: Handler

    @property
    def name(self) -> str:
        return f"{self.event}.{self.action or '*'}"


class RouteConflict(ValueError):
    pass


def payload_model(fn: Callable[..., Any]) -> type[BaseModel]:
    """The pydantic model a handler declares as the type of its second parameter (the event)."""
    params = list(inspect.signature(fn).parameters)
    hints = typing.get_type_hints(fn)
    model = hints.get(params[1]) if len(params) >= 2 else None
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TypeError(
            f"handler {fn.__module__}.{fn.__qualname__} must declare its payload model: annotate its "
            "second parameter with a pydantic model, or pass model= to register()"
        )
    return model


class Routes:
    """A table of (event, action) → route, filled with :meth:`register` and merged with :meth:`include`."""

    def __init__(self) -> None:
        self._routes: dict[tuple[str, str | None], Route] = {}
        self._events: dict[str, frozenset[str] | None] = {}  # event → its actions (None: any action)

    def register(
        self,
        event: str,
        *,
        action: str | Iterable[str] | None = None,
        model: type[BaseModel] | None = None,
    ) -> Callable[[H], H]:
        """Decorator: ``fn`` handles ``event`` with ``action`` (one, several, or None for every action)."""
        actions: tuple[str | None, ...] = (
            (action,) if action is None or isinstance(action, str) else tuple(action)
        )

        def decorate(fn: H) -> H:
            payload = model or payload_model(fn)
            for a in actions:
                self.add(Route(event, a, payload, fn))
            return fn

        return decorate

    def add(self, route: Route) -> None:
        key = (route.event, route.action)
        existing = self._routes.get(key)
        if existing is not None and existing != route:
            raise RouteConflict(
                f"{route.name} is handled twice: by {_where(existing.handler)} and {_where(route.handler)}"
            )
        self._routes[key] = route
        self._events = _index(self._routes)

    def include(self, other: Routes) -> Routes:
        for route in other:
            self.add(route)
        return self

    def lookup(self, event: str, action: str) -> Route | None:
        """The route for this delivery: one registered for its action, else one for every action."""
        return self._routes.get((event, action)) or self._routes.get((event, None))

    def handles_event(self, event: str) -> bool:
        return event in self._events

    def ignores(self, event: str, action: str) -> bool:
        """True when no route could take (event, action): the delivery can be answered without parsing."""
        if event not in self._events:
            return True
        actions = self._events[event]
        return actions is not None and action not in actions

    @property
    def events(self) -> frozenset[str]:
        return frozenset(self._events)

    def __iter__(self) -> Iterator[Route]:
        return iter(list(self._routes.values()))

    def __len__(self) -> int:
        return len(self._routes)


def _index(routes: dict[tuple[str, str | None], Route]) -> dict[str, frozenset[str] | None]:
    actions: dict[str, set[str] | None] = {}
    for event, action in routes:
        known = actions.setdefault(event, set())
        if action is None or known is None:
            actions[event] = None
        else:
            known.add(action)
    return {event: None if a is None else frozenset(a) for event, a in actions.items()}


def _where(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"
