"""``install()``: make ``import socketserver`` return :mod:`typedserve.compat`.

Installed, the compat classes also present themselves as members of ``socketserver``
(``__module__``), as the stdlib's do: reprs, pickles by reference and introspection such as
CPython's ``test_socketserver`` see the module they are installed as. ``uninstall()`` gives
them back ``typedserve.compat``.
"""

from __future__ import annotations

import sys
import types
import warnings
from typing import Any

__all__ = ["install", "uninstall"]

_PUBLIC_MODULE = "typedserve.compat"
_STDLIB = "socketserver"
_saved: dict[str, types.ModuleType | None] = {}


def _present_as(this: types.ModuleType, old_name: str, new_name: str) -> None:
    """Set ``__module__`` to ``new_name`` on the classes of ``this`` that say ``old_name``."""
    for value in vars(this).values():
        if isinstance(value, type) and value.__module__ == old_name:
            value.__module__ = new_name


def _stdlib_classes(module: types.ModuleType) -> dict[int, str]:
    """``id(class) -> name`` for the classes the module ``module`` defines."""
    return {
        id(value): name
        for name, value in vars(module).items()
        if isinstance(value, type) and value.__module__ == module.__name__
    }


def _derives_from(cls: type, classes: dict[int, str]) -> bool:
    return any(id(base) in classes for base in getattr(cls, "__mro__", ()))


def _dependents(old: types.ModuleType) -> dict[str, types.ModuleType]:
    """The modules holding ``old``, one of its classes, or a class derived from one."""
    classes = _stdlib_classes(old)
    found: dict[str, types.ModuleType] = {}
    for name, module in list(sys.modules.items()):
        if module is None or module is old or name.startswith("typedserve"):
            continue
        for value in list(vars(module).values()):
            if value is old or (isinstance(value, type) and _derives_from(value, classes)):
                found[name] = module
                break
    return found


def _defines_derived(module: types.ModuleType, classes: dict[int, str]) -> bool:
    return any(
        isinstance(value, type)
        and value.__module__ == module.__name__
        and _derives_from(value, classes)
        for value in vars(module).values()
    )


def _rebind(module: types.ModuleType, replacements: dict[int, Any]) -> None:
    for name, value in list(vars(module).items()):
        new = replacements.get(id(value))
        if new is not None:
            setattr(module, name, new)


def _reload_order(modules: dict[str, types.ModuleType]) -> list[str]:
    """Module names ordered so that a module's base classes are reloaded before it."""
    order: list[str] = []
    defined = {name: _stdlib_classes(module) for name, module in modules.items()}

    def visit(name: str, seen: set[str]) -> None:
        if name in order or name in seen:
            return
        seen.add(name)
        for value in vars(modules[name]).values():
            if isinstance(value, type) and value.__module__ == name:
                for other, classes in defined.items():
                    if other != name and _derives_from(value, classes):
                        visit(other, seen)
        order.append(name)

    for name in modules:
        visit(name, set())
    return order


def install(*, reload_dependents: bool = False) -> tuple[str, ...]:
    """Make ``import socketserver`` (and ``sys.modules["socketserver"]``) give this module.

    Call it before ``http.server``, ``xmlrpc.server``, ``wsgiref.simple_server``,
    ``logging.config`` or your own code imports ``socketserver``: their classes then derive
    from the compat classes. If the stdlib module was already imported, every loaded module's
    reference to it (``module.socketserver``) or to one of its classes (``from socketserver
    import TCPServer``) is rebound to the compat module and class. Classes already *derived*
    from stdlib classes (``http.server.HTTPServer``, say) cannot be rebound: with
    ``reload_dependents=True`` the modules defining them are reloaded (bases first, and every
    loaded module's references to their classes rebound); otherwise a ``RuntimeWarning``
    names them. Reloading re-runs module code, so module-level state is reset and objects
    created before keep the old classes.

    Installed, the compat classes' ``__module__`` is ``socketserver`` (reprs, pickles by
    reference), until :func:`uninstall`.

    Returns the names of the modules that still define classes derived from the stdlib
    ``socketserver`` (empty when the installation is complete). Calling it again is harmless.
    """
    this = sys.modules[_PUBLIC_MODULE]
    old = sys.modules.get(_STDLIB)
    if old is this:
        return ()
    _saved.setdefault(_STDLIB, old)
    sys.modules[_STDLIB] = this
    _present_as(this, _PUBLIC_MODULE, _STDLIB)
    if old is None:
        return ()
    classes = _stdlib_classes(old)
    replacements: dict[int, Any] = {id(old): this}
    for class_id, name in classes.items():
        replacement = vars(this).get(name)
        if isinstance(replacement, type):
            replacements[class_id] = replacement
    dependents = _dependents(old)
    for module in dependents.values():
        _rebind(module, replacements)
    stale = {name: m for name, m in dependents.items() if _defines_derived(m, classes)}
    if stale and reload_dependents:
        from importlib import reload  # only here: importing compat stays cheap

        for name in _reload_order(stale):
            previous = {id(v): k for k, v in vars(stale[name]).items() if isinstance(v, type)}
            fresh = reload(stale[name])
            moved = {
                class_id: vars(fresh)[attr]
                for class_id, attr in previous.items()
                if isinstance(vars(fresh).get(attr), type)
            }
            for module in list(sys.modules.values()):
                if module is not None and module is not fresh:
                    _rebind(module, moved)
        stale = {name: m for name, m in stale.items() if _defines_derived(m, classes)}
    if stale:
        warnings.warn(
            "typedserve.compat.install(): these modules imported the stdlib socketserver "
            f"first and keep classes derived from it: {', '.join(sorted(stale))} (call "
            "install() earlier, or pass reload_dependents=True)",
            RuntimeWarning,
            stacklevel=2,
        )
    return tuple(sorted(stale))


def uninstall() -> None:
    """Undo :func:`install`: ``sys.modules["socketserver"]`` is what it was before, and the
    compat classes' ``__module__`` is ``typedserve.compat`` again.

    Modules imported while it was installed keep their compat-based classes.
    """
    if _STDLIB not in _saved:
        return
    _present_as(sys.modules[_PUBLIC_MODULE], _STDLIB, _PUBLIC_MODULE)
    old = _saved.pop(_STDLIB)
    if old is None:
        sys.modules.pop(_STDLIB, None)
    else:
        sys.modules[_STDLIB] = old
