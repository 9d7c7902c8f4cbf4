"""Attributes of moto classes (and modules) that the local cloud replaces, and gives back exactly as they were.

Every extension keeps its replacements in a ``Patches`` so that uninstalling it restores moto's own attributes,
including the ones a class only inherited, in the reverse order of replacement.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

Owner = type | ModuleType


class Patches:
    """Attributes replaced on moto classes, put back in reverse order by ``restore``."""

    def __init__(self) -> None:
        self._saved: list[tuple[Owner, str, Any, bool]] = []
        self._originals: dict[tuple[Owner, str], Any] = {}

    @property
    def applied(self) -> bool:
        """Whether attributes are replaced that ``restore`` has not put back yet."""
        return bool(self._saved)

    def wrap(self, owner: Owner, name: str, make: Callable[[Any], Any]) -> None:
        """Replace ``owner.name`` with ``make(current attribute)``."""
        self.set(owner, name, make(getattr(owner, name)))

    def set(self, owner: Owner, name: str, value: Any) -> None:
        own = name in vars(owner)
        self._saved.append((owner, name, vars(owner).get(name), own))
        self._originals.setdefault((owner, name), getattr(owner, name, None))
        setattr(owner, name, value)

    def original(self, owner: Owner, name: str) -> Any:
        """``owner.name`` as attribute access gave it before these patches first replaced it."""
        return self._originals[(owner, name)]

    def restore(self) -> None:
        while self._saved:
            owner, name, value, own = self._saved.pop()
            if own:
                setattr(owner, name, value)
            else:
                delattr(owner, name)
        self._originals.clear()
