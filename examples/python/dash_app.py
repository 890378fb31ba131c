"""A Dash app on tiered: run it with

    python examples/python/dash_app.py

The slow query's result is kept in memory and on disk: it survives a restart of the server,
and every worker process on the machine shares it.
"""

import os
import time

from dash import Dash, Input, Output, dcc, html

import tiered


@tiered.memoize(ttl="1h")
def get_data(value: int) -> list[int]:
    """A slow database query: one second, then ten numbers for ``value``."""
    time.sleep(1)
    return [(value * 7 + i * 13) % 100 for i in range(10)]


app = Dash(__name__)
app.layout = html.Div(
    [
        html.H1("tiered + Dash"),
        dcc.Slider(0, 10, 1, value=0, id="value"),
        dcc.Graph(id="plot"),
    ]
)


@app.callback(Output("plot", "figure"), Input("value", "value"))
def update(value: int) -> dict:
    data = get_data(value)
    return {"data": [{"y": data, "type": "line"}], "layout": {"title": f"value {value}"}}


if __name__ == "__main__":
    app.run(port=int(os.environ.get("PORT", "8050")), debug=False)
