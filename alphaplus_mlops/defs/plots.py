"""Plots for the UI's asset metadata: a PNG inlined in markdown."""

from __future__ import annotations

import base64
import io

import pandas as pd


def equity_plot_markdown(curves: list[tuple[str, pd.Series]], ylabel: str, title: str) -> str:
    """Equity curves (label, series indexed by time) as a markdown image."""
    import matplotlib

    matplotlib.use("Agg")  # no display where runs execute
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3), dpi=80)
    for label, equity in curves:
        ax.plot(equity.index.to_numpy(), equity.to_numpy(), label=label)
    ax.set_ylabel(ylabel)
    ax.legend(loc="upper left")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return f"![{title}](data:image/png;base64,{encoded})"
