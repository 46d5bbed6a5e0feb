"""One way to choose a stage's backend: a registry of names, each with a factory taking the stage's
settings.

Every stage service declares its registry once (``flux_service.backends.BACKENDS``…), and its
configuration names the backend (``MESHFORGE_FLUX_BACKEND=diffusers``). A backend reports the name it
was configured by, and declares its ``Capabilities``, which the service advertises in /health.
Factories import their backend's module when called: a model backend's torch is never imported by a
process configured for another backend.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from meshforge.errors import InvalidInput

S = TypeVar("S")  # the stage's settings
B = TypeVar("B")  # the stage's backend interface


class BackendRegistry(Generic[S, B]):
    """The backends one stage can run, by configured name."""

    def __init__(self, what: str, setting: str, docs: str) -> None:
        self.what = what  # "flux-service backend", for messages
        self.setting = setting  # the environment variable that chooses
        self.docs = docs
        self._factories: dict[str, Callable[[S], B]] = {}

    def register(self, name: str) -> Callable[[Callable[[S], B]], Callable[[S], B]]:
        """Decorator: ``@BACKENDS.register("procedural")`` on a factory ``(settings) -> backend``."""

        def add(factory: Callable[[S], B]) -> Callable[[S], B]:
            if name in self._factories:
                raise ValueError(f"{self.what} {name!r} is registered twice")
            self._factories[name] = factory
            return factory

        return add

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._factories)

    def load(self, name: str, settings: S) -> B:
        """The backend ``name``, built from ``settings``; a model backend raises ModelNotFound when
        its weights are missing, and an unknown name is an InvalidInput naming the choices."""
        factory = self._factories.get(name)
        if factory is None:
            raise InvalidInput(
                f'unknown {self.what} "{name}" ({self.setting}): this build offers '
                f"{', '.join(self.names)} (see {self.docs})"
            )
        return factory(settings)
