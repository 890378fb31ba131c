"""The Panel app of the users' thread (docs/python.md): run it with

    panel serve examples/python/panel_app.py --dev

- a slow query by value, kept on disk: it survives a ``--dev`` reload and a restart;
- a plot per value, kept in this session's memory only (Bokeh figures belong to one session);
- a button that clears the cache.
"""

import time

import numpy as np
import pandas as pd
import panel as pn
from bokeh.plotting import figure

import tiered.panel

pn.extension()


@tiered.panel.cache(to_disk=True, ttl=5 * 60)
def get_data(value: int) -> pd.DataFrame:
    """A slow database query: one second, then 100 rows for ``value``."""
    time.sleep(1)
    rng = np.random.default_rng(value)
    return pd.DataFrame(rng.integers(0, 100, size=(100, 4)), columns=list("ABCD"))


@tiered.panel.cache(per_session=True)
def make_plot(value: int) -> figure:
    """A plot of the data: in this session's memory only, dropped when the session ends."""
    df = get_data(value)
    fig = figure(height=300, title=f"value {value}", sizing_mode="stretch_width")
    for column, color in zip("ABCD", ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")):
        fig.line(df.index, df[column], color=color, legend_label=column)
    return fig


value = pn.widgets.IntSlider(name="value", start=0, end=10, value=0)
clear = pn.widgets.Button(name="Clear cache", button_type="warning")
status = pn.pane.Markdown()


def on_clear(_event: object) -> None:
    tiered.panel.clear_caches()
    status.object = "Cache cleared: the next value is queried again."


clear.on_click(on_clear)


def view(value: int) -> pn.Column:
    df = get_data(value)
    return pn.Column(pn.pane.Bokeh(make_plot(value)), pn.pane.DataFrame(df.head(), width=400))


pn.Column(
    "# tiered + Panel",
    pn.Row(value, clear),
    status,
    pn.panel(pn.bind(view, value), loading_indicator=True),
).servable(title="tiered + Panel")
