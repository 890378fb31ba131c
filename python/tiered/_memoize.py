"""What ``@cache.memoize`` needs to know of a function: its identity, its code version, and
which parameters make its key.

Identity
    The function's file, relative to its project's root (the nearest folder above it holding
    ``pyproject.toml``, ``setup.py`` or ``.git``; else the file's own folder), and its qualified
    name. Never ``__module__``: the script ``panel serve`` runs is a fresh module
    ``bokeh_app_<uuid>`` in every session, Streamlit's is ``__main__``; keyed by either, every
    session would write new entries.

Version
    A structural fingerprint of the bytecode: instructions and the constants and names they use,
    nested code objects, defaults. Line numbers and docstrings are not part of it, so a comment or
    a blank line changes nothing, while a changed constant, default or body does. Functions of the
    same project that it calls (by a global name, or an attribute of a project module) are folded
    in, as are plain constants it reads from its module (numbers, strings, tuples of them). Then
    ``deps=[...]`` and ``version=``: escape hatches for what the fingerprint cannot see.
"""

from __future__ import annotations

import dis
import hashlib
import inspect
import os
import sys
import types
import warnings
from typing import Any, Callable, Iterable

_ROOT_MARKERS = ("pyproject.toml", "setup.py", ".git")
_roots: dict[str, str] = {}


def project_root(filename: str) -> str:
    """The nearest folder above ``filename`` that holds a project marker, else its folder."""
    folder = os.path.dirname(os.path.abspath(filename))
    found = _roots.get(folder)
    if found is not None:
        return found
    p = folder
    while True:
        if any(os.path.exists(os.path.join(p, m)) for m in _ROOT_MARKERS):
            break
        parent = os.path.dirname(p)
        if parent == p:
            p = folder
            break
        p = parent
    _roots[folder] = p
    return p


def _notebook_path(func: Callable[..., Any]) -> str | None:
    """The notebook a function was defined in, when Jupyter says (cells are files with random
    names that change at every kernel start)."""
    g = getattr(func, "__globals__", {})
    for name in ("__session__", "__vsc_ipynb_file__"):
        path = g.get(name)
        if isinstance(path, str) and path.endswith(".ipynb"):
            return path
    return None


def identity(func: Callable[..., Any]) -> str:
    """``relative/path.py:Qual.name`` for ``func``."""
    code = getattr(func, "__code__", None)
    qualname = getattr(func, "__qualname__", getattr(func, "__name__", "function"))
    if qualname.endswith("<lambda>") and code is not None:
        # Lambdas share one name: the line tells two of one file apart.
        qualname = f"{qualname}@{code.co_firstlineno}"
    notebook = _notebook_path(func)
    if notebook is not None:
        root = project_root(notebook)
        return f"{os.path.relpath(os.path.abspath(notebook), root)}:{qualname}"
    filename = code.co_filename if code is not None else None
    if not filename or filename.startswith("<"):
        # Code made by exec() of a string: the module's name is all there is.
        return f"<{getattr(func, '__module__', '?')}>:{qualname}"
    root = project_root(filename)
    rel = os.path.relpath(os.path.abspath(filename), root)
    return f"{rel.replace(os.sep, '/')}:{qualname}"


def captured(func: Callable[..., Any]) -> str:
    """What a closure captured, as a suffix of its identity (``""`` for a plain function):
    closures made by one factory with other values (``make_loader("users")``,
    ``make_loader("orders")``) are other functions. The values are taken as they are when the
    function is decorated; one that cannot be keyed (a connection) is left out."""
    closure = getattr(func, "__closure__", None)
    if not closure:
        return ""
    from ._tiered import key_text

    h = hashlib.blake2b(digest_size=8)
    for name, cell in zip(func.__code__.co_freevars, closure):
        if name == "__class__":  # a method's super(): its class is in its name already
            continue
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell: a variable assigned later
            continue
        try:
            text = key_text(value)
        except (TypeError, RecursionError) as e:
            warnings.warn(
                f"tiered: `{func.__qualname__}` captured `{name}`, which cannot be keyed ({e}); "
                "closures that differ only in it share their entries: give each a name=",
                RuntimeWarning,
                stacklevel=4,
            )
            continue
        h.update(f"{name}={text};".encode())
    return f"[{h.hexdigest()}]"


def _in_project(code: types.CodeType, root: str) -> bool:
    f = code.co_filename
    if not f or f.startswith("<"):
        return False
    f = os.path.abspath(f)
    if "site-packages" in f or "dist-packages" in f:
        return False
    return f.startswith(root + os.sep)


_PLAIN = (int, float, str, bytes, bool, type(None), complex)


def _canonical(value: Any) -> str:
    """``repr`` of a plain value, the same in every process: a set's elements sorted (the order
    ``repr`` gives depends on the interpreter's hash seed)."""
    if isinstance(value, (frozenset, set)):
        inner = ", ".join(sorted(_canonical(v) for v in value))
        return f"{type(value).__name__}({{{inner}}})"
    if isinstance(value, tuple):
        return "(" + ", ".join(_canonical(v) for v in value) + ",)"
    return repr(value)


def _plain(value: Any) -> bool:
    if isinstance(value, _PLAIN):
        return True
    if isinstance(value, (tuple, frozenset)):
        return all(_plain(v) for v in value)
    return False


class _Fingerprint:
    def __init__(self, root: str) -> None:
        self.h = hashlib.blake2b(digest_size=8)
        self.root = root
        self.seen: set[int] = set()

    def feed(self, *parts: Any) -> None:
        for p in parts:
            b = p if isinstance(p, bytes) else repr(p).encode()
            self.h.update(len(b).to_bytes(4, "little"))
            self.h.update(b)

    def function(self, func: Any) -> None:
        func = inspect.unwrap(func, stop=lambda f: not hasattr(f, "__wrapped__"))
        code = getattr(func, "__code__", None)
        if code is None or id(code) in self.seen:
            return
        self.seen.add(id(code))
        self.feed("fn", getattr(func, "__qualname__", ""))
        defaults = getattr(func, "__defaults__", None) or ()
        kwdefaults = getattr(func, "__kwdefaults__", None) or {}
        self.feed("defaults", *(self._value(d) for d in defaults))
        self.feed("kwdefaults", *(f"{k}={self._value(v)}" for k, v in sorted(kwdefaults.items())))
        self.code(code, getattr(func, "__globals__", {}))

    def _value(self, v: Any) -> str:
        if _plain(v):
            return f"{type(v).__name__}:{_canonical(v)}"
        return f"<{type(v).__module__}.{type(v).__qualname__}>"

    def code(self, code: types.CodeType, globals_: dict[str, Any]) -> None:
        self.feed(
            "code",
            code.co_argcount,
            code.co_posonlyargcount,
            code.co_kwonlyargcount,
            code.co_flags & ~0x0,  # flags say generator, coroutine, varargs
            code.co_varnames,
            code.co_freevars,
            code.co_cellvars,
        )
        previous_global: Any = None
        for ins in dis.get_instructions(code):
            if ins.opname in ("CACHE", "EXTENDED_ARG", "NOP", "RESUME"):
                continue
            arg = ins.argval
            if isinstance(arg, types.CodeType):
                self.feed(ins.opname)
                self.code(arg, globals_)
                previous_global = None
                continue
            if ins.opname == "LOAD_CONST" or ins.opname == "RETURN_CONST":
                self.feed(ins.opname, type(arg).__name__, _canonical(arg))
                continue
            self.feed(ins.opname, repr(arg) if not isinstance(arg, int) else arg)
            if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
                name = arg if isinstance(arg, str) else str(arg)
                name = name.removeprefix("NULL + ").removesuffix(" + NULL")
                target = globals_.get(name)
                previous_global = target
                self.referenced(target)
            elif ins.opname in ("LOAD_ATTR", "LOAD_METHOD") and isinstance(
                previous_global, types.ModuleType
            ):
                name = str(arg).removeprefix("NULL|self + ").removesuffix(" + NULL|self")
                target = getattr(previous_global, name, None)
                self.referenced(target)
                # `pkg.sub.f`: follow the chain of modules.
                previous_global = target if isinstance(target, types.ModuleType) else None
            else:
                previous_global = None

    def referenced(self, target: Any) -> None:
        """Folds in what a global name refers to, if it belongs to the project."""
        if target is None:
            return
        if _plain(target):
            self.feed("global", type(target).__name__, _canonical(target))
            return
        wrapped = getattr(target, "__wrapped__", None)
        if wrapped is not None and callable(wrapped):
            target = wrapped
        code = getattr(target, "__code__", None)
        if isinstance(code, types.CodeType) and _in_project(code, self.root):
            self.function(target)
            return
        if isinstance(target, type) and id(target) not in self.seen:
            # A class of the project (one of its methods is): its methods, by name, its
            # bases' included (`self.inherited()`), and its properties' functions.
            methods = []
            for cls in target.__mro__:
                if cls is object:
                    continue
                for name, member in sorted(vars(cls).items()):
                    parts = (
                        [member.fget, member.fset, member.fdel]
                        if isinstance(member, property)
                        else [getattr(member, "__func__", member)]
                    )
                    for inner in parts:
                        inner = getattr(inner, "__wrapped__", inner)
                        code = getattr(inner, "__code__", None)
                        if isinstance(code, types.CodeType):
                            methods.append((f"{cls.__qualname__}.{name}", inner, _in_project(code, self.root)))
            if any(in_project for _, _, in_project in methods):
                self.seen.add(id(target))
                for name, inner, _ in methods:
                    self.feed("method", name)
                    self.function(inner)

    def value(self) -> int:
        return int.from_bytes(self.h.digest(), "little")


def fingerprint(
    func: Callable[..., Any], deps: Iterable[Any] = (), version: Any = None
) -> int:
    """The code version of ``func`` (a 64-bit int): see the module's docs. Computed at the
    function's first call, when its module has run to its end."""
    fp = _Fingerprint(_root_of(func))
    fp.feed("python", sys.version_info[:2])
    fp.function(func)
    owner = _owning_class(func)
    if owner is not None:
        # A method: `self.helper()` reaches the class's other methods.
        fp.referenced(owner)
    for dep in deps:
        if callable(dep) and hasattr(inspect.unwrap(dep), "__code__"):
            fp.function(dep)
        else:
            fp.feed("dep", _canonical(dep))
    if version is not None:
        fp.feed("version", _canonical(version))
    return fp.value()


def _root_of(func: Callable[..., Any]) -> str:
    """The project a function belongs to: its notebook's, for a function defined in one (a
    cell's file is in a temporary folder); else its file's."""
    notebook = _notebook_path(func)
    if notebook is not None:
        return project_root(notebook)
    code = getattr(func, "__code__", None)
    if code is not None and code.co_filename and not code.co_filename.startswith("<"):
        return project_root(code.co_filename)
    return os.getcwd()


def _owning_class(func: Callable[..., Any]) -> type | None:
    """The class a method is defined in, found by its qualified name in its module."""
    parts = getattr(func, "__qualname__", "").split(".")
    if len(parts) < 2 or "<locals>" in parts:
        return None
    owner: Any = getattr(func, "__globals__", {}).get(parts[0])
    for name in parts[1:-1]:
        owner = getattr(owner, name, None)
    return owner if isinstance(owner, type) else None


def parameters(
    func: Callable[..., Any], ignore: Iterable[str] = ()
) -> list[tuple[str, int, bool, Any, bool]]:
    """``(name, kind, has_default, default, keyed)`` per parameter: what the Rust side binds."""
    ignored = set(ignore)
    sig = inspect.signature(func)
    unknown = ignored - set(sig.parameters)
    if unknown:
        raise ValueError(
            f"ignore={sorted(unknown)} names no parameter of {func.__qualname__} "
            f"(its parameters: {list(sig.parameters)})"
        )
    out = []
    for name, p in sig.parameters.items():
        has_default = p.default is not inspect.Parameter.empty
        keyed = not name.startswith("_") and name not in ignored
        out.append((name, int(p.kind), has_default, p.default if has_default else None, keyed))
    return out
