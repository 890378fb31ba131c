"""The current framework session, for ``memoize(scope="session")``.

A session-scoped entry is kept in memory only and tagged ``tiered/scope/<session id>``; when the
framework says the session ended, that tag is invalidated in every cache that stored entries
for it, so sessions never grow the folder nor hold memory after they end.

What a session is, and how its end is known:

Panel
    A Bokeh server session (``pn.state.curdoc.session_context.id``); its end is Panel's
    ``pn.state.on_session_destroyed``.
Streamlit
    A script-run context's ``session_id``; its end is Streamlit's own end of session-scoped
    caches: a ``st.cache_resource(scope="session", on_release=...)`` token is made for the
    session, and Streamlit releases it when the session disconnects (as it clears its own
    ``scope="session"`` caches). Streamlit versions without ``on_release`` give no end: the
    entries then live until memory evicts them.
Dash and other Flask apps
    The browser's Flask session cookie: an id kept in ``flask.session`` (the app needs a
    ``secret_key``; without one, a session-scoped call raises ``RuntimeError``). A server never
    learns that a browser went away, so a Flask session ends when it has made no session-scoped
    call for :data:`FLASK_IDLE` seconds (``$TIERED_SESSION_IDLE``, default 1800); ended sessions
    are swept at later calls.
"""

from __future__ import annotations

import os
import secrets
import sys
import threading
import time
from typing import Any, Callable

#: Outside any session (a script, a test, module import): one shared scope.
NO_SESSION = "none"

#: The key in ``flask.session`` that holds a browser session's id.
FLASK_KEY = "_tiered_session"


def _idle_from_env() -> float:
    raw = os.environ.get("TIERED_SESSION_IDLE", "").strip()
    try:
        return float(raw) if raw else 1800.0
    except ValueError:
        raise ValueError(
            f"TIERED_SESSION_IDLE={raw!r}: give the seconds a Flask session may stay idle"
        ) from None


#: Seconds without a call after which a Flask (Dash) session counts as ended.
FLASK_IDLE = _idle_from_env()

_lock = threading.Lock()
#: Session id -> the caches that stored entries for it (by ``id``), to invalidate at its end.
_caches: dict[str, dict[int, Any]] = {}
#: Flask session id -> when it was last seen (``time.monotonic``).
_flask_seen: dict[str, float] = {}
_flask_swept = 0.0


def _register(sid: str, cache: Any, hook: Callable[[], None]) -> None:
    """Remembers that ``cache`` holds entries of ``sid``; calls ``hook`` for a new session."""
    with _lock:
        known = _caches.get(sid)
        if known is not None:
            if id(cache) not in known:
                known[id(cache)] = cache
            return
        _caches[sid] = {id(cache): cache}
    try:
        hook()
    except Exception:  # noqa: BLE001 - no end hook: entries then live until evicted
        pass


_listeners: list[Callable[[str], None]] = []


def on_end(callback: Callable[[str], None]) -> None:
    """Calls ``callback(session_id)`` at the end of every session (once registered)."""
    with _lock:
        if callback not in _listeners:
            _listeners.append(callback)


def ended(sid: str) -> None:
    """Drops the entries of session ``sid`` from every cache that stored some."""
    with _lock:
        caches = _caches.pop(sid, {})
        listeners = list(_listeners)
    for cache in caches.values():
        try:
            cache.invalidate_tag(f"tiered/scope/{sid}")
        except Exception:  # noqa: BLE001 - a closed or failing cache: nothing left to drop
            pass
    for callback in listeners:
        callback(sid)


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

    def hook() -> None:
        pn.state.on_session_destroyed(lambda _ctx: ended(sid))

    _register(sid, cache, hook)
    return sid


_streamlit_token: Any = None


def _streamlit_release(sid: Any) -> None:
    ended(str(sid))


def _streamlit_hook(sid: str) -> None:
    global _streamlit_token
    if _streamlit_token is None:
        import streamlit as st

        def _tiered_session_token(sid: str) -> str:
            return sid

        # TypeError: a Streamlit without session-scoped resources; no end is known then.
        _streamlit_token = st.cache_resource(
            scope="session", on_release=_streamlit_release, show_spinner=False
        )(_tiered_session_token)
    _streamlit_token(sid)


def _streamlit_session(cache: Any) -> str | None:
    if "streamlit" not in sys.modules:
        return None
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        ctx = get_script_run_ctx(suppress_warning=True)
    except Exception:  # noqa: BLE001 - not under Streamlit's runtime
        return None
    sid = getattr(ctx, "session_id", None)
    if not sid:
        return None
    sid = f"streamlit:{sid}"
    _register(sid, cache, lambda: _streamlit_hook(sid))
    return sid


def _flask_session(cache: Any) -> str | None:
    flask = sys.modules.get("flask")
    if flask is None or not flask.has_request_context():
        return None
    app = flask.current_app
    if not app.secret_key:
        raise RuntimeError(
            'memoize(scope="session") in a Flask (Dash) request needs a session: set '
            "app.server.secret_key (Dash) or app.secret_key (Flask) to a secret value, "
            'or use scope="global" or a scope callable'
        )
    session = flask.session
    raw = session.get(FLASK_KEY)
    if not isinstance(raw, str) or not raw:
        raw = secrets.token_urlsafe(16)
        session[FLASK_KEY] = raw
    sid = f"flask:{raw}"
    now = time.monotonic()
    global _flask_swept
    with _lock:
        _flask_seen[sid] = now
        sweep = now - _flask_swept >= min(60.0, FLASK_IDLE / 4)
        if sweep:
            _flask_swept = now
            gone = [s for s, seen in _flask_seen.items() if now - seen > FLASK_IDLE]
            for s in gone:
                del _flask_seen[s]
        else:
            gone = []
    for s in gone:
        ended(s)
    _register(sid, cache, lambda: None)
    return sid


def current(cache: Any) -> str:
    """The id of the session this call runs in, or :data:`NO_SESSION`."""
    return (
        _panel_session(cache)
        or _streamlit_session(cache)
        or _flask_session(cache)
        or NO_SESSION
    )
