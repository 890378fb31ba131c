"""The current framework session, for ``memoize(scope="session")``.

A session-scoped entry is kept in memory only and tagged ``tiered/scope/<session id>``; when the
framework says the session ended, that tag is invalidated, so sessions never grow the folder nor
hold memory after they end.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

#: Outside any session (a script, a test, module import): one shared scope.
NO_SESSION = "none"

_hooked: set[str] = set()
_lock = threading.Lock()


def _panel_session(cache: Any) -> str | None:
    pn = sys.modules.get("panel")
    if pn is None:
        return None
    try:
        doc = pn.state.curdoc
        ctx = getattr(doc, "session_context", None) if doc is not None else None
        sid = getattr(ctx, "id", None)
    except Exception:  # noqa: BLE001 - no session here
        return None
    if not sid:
        return None
    sid = f"panel:{sid}"
    with _lock:
        if sid not in _hooked:
            _hooked.add(sid)

            def ended(_ctx: Any, sid: str = sid) -> None:
                _hooked.discard(sid)
                cache.invalidate_tag(f"tiered/scope/{sid}")

            try:
                pn.state.on_session_destroyed(ended)
            except Exception:  # noqa: BLE001 - an old Panel: entries then live until evicted
                pass
    return sid


def _streamlit_session() -> str | None:
    if "streamlit" not in sys.modules:
        return None
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        ctx = get_script_run_ctx(suppress_warning=True)
    except Exception:  # noqa: BLE001 - not under Streamlit's runtime
        return None
    sid = getattr(ctx, "session_id", None)
    return f"streamlit:{sid}" if sid else None


def current(cache: Any) -> str:
    """The id of the session this call runs in, or :data:`NO_SESSION`."""
    return _panel_session(cache) or _streamlit_session() or NO_SESSION
