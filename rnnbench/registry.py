"""Named registries: plain dicts that refuse duplicates and list the valid choices on a miss.

Every pluggable concept (tasks, architectures, optimizers, clipping modes) lives in one of these
instead of an if/elif chain on names, so a user extends rnnbench by registering, not by editing.
:func:`import_plugins` imports the modules in which users register their own entries.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
import weakref
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Generic, TypeVar

from rnnbench.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> entry mapping for one kind of thing (``kind`` is used in error messages)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        """Register ``entry`` under ``name``. The same definition again (a re-run notebook
        cell, a plugin module imported anew) replaces the old one; a different definition under
        a taken name is refused, naming both."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")
        if name in self._entries:
            old, new = origin(self._entries[name]), origin(entry)
            if old is None or old != new:
                raise ConfigError(
                    f"{self.kind} {name!r} is already registered ({old or 'an entry'}); "
                    f"cannot register {new or 'another entry'} under the same name"
                )
        self._entries[name] = entry
        return entry

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`add`."""

        def decorate(entry: T) -> T:
            return self.add(name, entry)

        return decorate

    def remove(self, name: str) -> None:
        """Forget ``name`` (for tests and notebooks that re-register a cell)."""
        self._entries.pop(name, None)

    def get(self, name: str, field: str | None = None) -> T:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            where = field or self.kind
            raise ConfigError(
                f"{where}: unknown {self.kind} {name!r}; allowed: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def values(self) -> list[T]:
        """The entries in registration order."""
        return list(self._entries.values())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def import_plugins(modules: Iterable[str], base: str | Path | None = None) -> None:
    """Import the modules that register user entries: tasks, cells (a sweep's ``imports``),
    finding them first in ``base`` (the sweep file's folder). ``sys.path`` is as it was
    afterwards. A module of the same name already imported from another folder (an earlier
    sweep's, in a reused Ray worker) is imported anew from this one."""
    folder = None if base is None else Path(base).resolve()
    added = folder is not None and str(folder) not in sys.path
    if added:
        sys.path.insert(0, str(folder))
    try:
        for name in modules:
            if folder is not None:
                _forget_if_from_elsewhere(name, folder)
            _import_one(name)
    finally:
        if added:
            sys.path.remove(str(folder))


def _forget_if_from_elsewhere(name: str, folder: Path) -> None:
    module = sys.modules.get(name)
    where = getattr(module, "__file__", None)
    if module is not None and where and folder not in Path(where).resolve().parents:
        candidate = folder / f"{name.replace('.', '/')}.py"
        if candidate.exists() or (folder / name.split(".")[0]).is_dir():
            for key in [k for k in sys.modules if k == name or k.startswith(f"{name}.")]:
                del sys.modules[key]


#: The source hash of each plugin module as it was when imported, so that a module edited
#: since is imported again (a notebook or test that runs a sweep twice in one process), and
#: a run's code version is the code it runs. Weak: forgetting a module forgets its entry.
_IMPORTED: weakref.WeakKeyDictionary[ModuleType, str] = weakref.WeakKeyDictionary()


def _file_hash(module: ModuleType) -> str | None:
    where = getattr(module, "__file__", None)
    try:
        return hashlib.sha256(Path(where).read_bytes()).hexdigest()[:16] if where else None
    except OSError:
        return None


def source_hash(name: str) -> str:
    """The hash of module ``name``'s source as it runs here: as imported by
    :func:`import_plugins`, else as its file reads now; 'unavailable' for a module without a
    source file (an interactive session)."""
    module = sys.modules.get(name)
    if module is None:
        return "unavailable"
    return _IMPORTED.get(module) or _file_hash(module) or "unavailable"


def _import_one(name: str) -> None:
    module = sys.modules.get(name)
    if module is not None and module in _IMPORTED and _file_hash(module) != _IMPORTED[module]:
        del sys.modules[name]  # edited since it was imported: import the new source
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise ConfigError(f"imports: cannot import {name!r} ({exc})") from None
    except ConfigError as exc:  # e.g. a cell registered under a taken name
        raise ConfigError(f"imports: {name!r}: {exc}") from None
    except Exception as exc:  # the module's own code raised: one line, not its traceback
        raise ConfigError(
            f"imports: importing {name!r} raised {type(exc).__name__}: {exc}"
        ) from None
    if module not in _IMPORTED:
        _IMPORTED[module] = _file_hash(module) or "unavailable"


def origin(entry: object) -> str | None:
    """Where a registered entry was defined, ``module.qualname`` (an entry may name its own
    with an ``origin`` attribute); None where that cannot be told."""
    named = getattr(entry, "origin", None)
    if isinstance(named, str) and named:
        return named
    module, qualname = getattr(entry, "__module__", None), getattr(entry, "__qualname__", None)
    return f"{module}.{qualname}" if module and qualname else None
