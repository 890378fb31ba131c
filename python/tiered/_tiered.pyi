"""Types of the Rust half of the package (``python/src``); use ``tiered.Cache`` instead."""

from typing import Any, Callable

class CacheError(Exception):
    """The cache could not do what was asked; the message says why and what to do."""

class Store:
    def __init__(
        self,
        path: str | None,
        memory: int | str,
        disk: int | str,
        durability: str,
        ttl: Any,
        encode: Callable[[Any], tuple[int, bytes | bytearray]],
        decode: Callable[[int, bytes], Any],
        reduce: Callable[[Any], tuple[str, Any]],
        request_timeout: float | None = None,
        before_open: Callable[[], None] | None = None,
        on_damaged_file: str = "set_aside",
    ) -> None: ...
    def namespace(self, name: str) -> "Store": ...
    @property
    def name(self) -> str | None: ...
    @property
    def path(self) -> str | None: ...
    @property
    def is_open(self) -> bool: ...
    def open(self) -> None: ...
    def get(self, key: Any, default: Any = None) -> Any: ...
    def get_from_memory(self, key: Any) -> tuple[bool, Any]: ...
    def getitem(self, key: Any) -> Any: ...
    def set(
        self,
        key: Any,
        value: Any,
        ttl: Any = None,
        at: Any = None,
        idle: Any = None,
        tags: list[str] | None = None,
        memory_only: bool = False,
    ) -> None: ...
    def delete(self, key: Any) -> bool: ...
    def contains(self, key: Any) -> bool: ...
    def get_or_set(
        self,
        key: Any,
        compute: Callable[[], Any],
        ttl: Any = None,
        at: Any = None,
        idle: Any = None,
        tags: list[str] | None = None,
        memory_only: bool = False,
    ) -> Any: ...
    def invalidate_tag(self, tag: str) -> None: ...
    def clear(self) -> None: ...
    def flush(self) -> None: ...
    def compact(self) -> None: ...
    def stats(self) -> dict[str, Any]: ...
    def stats_by_process(self) -> list[dict[str, Any]]: ...
    def health(self) -> str: ...
    def owner_pid(self) -> int | None: ...

class Pending:
    """A call on its way from ``Memoized.lookup_memory`` to ``Memoized.through``."""

class Memoized:
    __wrapped__: Callable[..., Any]
    def __init__(
        self,
        store: Store,
        func: Callable[..., Any],
        path: str,
        version: Callable[[], int],
        params: list[tuple[str, int, bool, Any, bool]],
        ttl: Any = None,
        at: Any = None,
        idle: Any = None,
        tags: list[str] | None = None,
        memory_only: bool = False,
        copy: bool = False,
        hash_funcs: dict[type, Callable[[Any], Any]] | None = None,
        scope: Callable[[], Any] | None = None,
        disabled: bool = False,
        label: str = "",
        refresh: Any = None,
        refresh_early: Any = None,
    ) -> None: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...
    def __get__(self, obj: Any, owner: Any = None) -> Any: ...
    def lookup_memory(
        self, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None
    ) -> tuple[bool, Any]: ...
    def through(self, pending: Pending, compute: Callable[[], Any]) -> Any: ...
    def clear(self, *args: Any, **kwargs: Any) -> bool: ...
    def refresh(self, *args: Any, **kwargs: Any) -> Any: ...
    def explain(self, *args: Any, **kwargs: Any) -> str: ...
    def stats(self) -> dict[str, int]: ...
    @property
    def identity(self) -> str: ...
    @property
    def version(self) -> int: ...

def flush_on_terminate() -> None:
    """Commits every open cache's pending writes on SIGTERM, then lets it end the process."""

def key_text(obj: Any) -> str:
    """The canonical text of ``obj`` as a key part, the same in every process."""

def leave_before_exit() -> None:
    """What a normal exit does to every open cache: commit, stop serving, let go."""
