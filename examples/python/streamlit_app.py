"""A Streamlit app on tiered: run it with

    streamlit run examples/python/streamlit_app.py

``cache_data`` keeps the slow query's result on disk (it survives a restart of the server) and
hands each run a fresh copy; ``cache_resource`` shares one object per process.
"""

import time

import numpy as np
import pandas as pd
import streamlit as st

import tiered.streamlit as tst


@tst.cache_data(ttl="1h", show_spinner="Querying...")
def get_data(value: int) -> pd.DataFrame:
    """A slow database query: one second, then 100 rows for ``value``."""
    time.sleep(1)
    rng = np.random.default_rng(value)
    return pd.DataFrame(rng.integers(0, 100, size=(100, 4)), columns=list("ABCD"))


@tst.cache_resource
def connection() -> dict:
    """A stand-in for a database connection: built once per process, shared by every session."""
    return {"opened_at": time.strftime("%H:%M:%S")}


st.title("tiered + Streamlit")
value = st.slider("value", 0, 10, 0)
df = get_data(value)
st.line_chart(df)
st.caption(f"connection opened at {connection()['opened_at']}")
if st.button("Clear cache"):
    get_data.clear()
    st.write("Cache cleared: the next value is queried again.")
