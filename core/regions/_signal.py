"""A tiny plain-Python signal, so that widgets can follow a core object without core knowing Qt.

STYLE.md §2: a core object that changes emits a signal and never holds a widget. Callbacks run on
the thread that made the change; the app must re-post them to its UI thread itself.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable
from typing import Generic, TypeAlias, TypeVar

T = TypeVar("T")
#: A connected callback: a bound method held weakly, or any other callable held as is.
_Slot: TypeAlias = "Callable[[T], object] | weakref.WeakMethod[Callable[[T], object]]"


class Signal(Generic[T]):
    """Calls every connected callback with one argument when :meth:`emit` is called.

    Bound methods are held weakly (a closed widget does not stay alive because it listened);
    plain functions and other callables are held strongly. Connecting twice has no extra effect.
    """

    def __init__(self) -> None:
        self._slots: list[_Slot[T]] = []

    def connect(self, callback: Callable[[T], object]) -> Callable[[T], object]:
        """Subscribe ``callback``; returns it so the method can be used as a decorator."""
        ref: _Slot[T] = weakref.WeakMethod(callback) if inspect.ismethod(callback) else callback
        if ref not in self._slots:
            self._slots.append(ref)
        return callback

    def disconnect(self, callback: Callable[[T], object]) -> None:
        """Unsubscribe ``callback``; unknown callbacks are ignored."""
        self._slots = [s for s in self._slots if self._resolve(s) not in (None, callback)]

    def emit(self, value: T) -> None:
        """Call every live callback with ``value``, in connection order."""
        for slot in list(self._slots):
            fn = self._resolve(slot)
            if fn is not None:
                fn(value)
        self._slots = [s for s in self._slots if self._resolve(s) is not None]

    def __len__(self) -> int:
        return sum(self._resolve(s) is not None for s in self._slots)

    @staticmethod
    def _resolve(slot: _Slot[T]) -> Callable[[T], object] | None:
        return slot() if isinstance(slot, weakref.WeakMethod) else slot
