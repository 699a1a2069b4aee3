"""Plots for the report and the dashboard, as inline SVG (no script, no file beside the page)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # no screen: render to files only

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROLE_STYLES = {"champion": "-", "challenger": "--", "previous": ":"}


def _svg(figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # the inline element, without the XML prolog


def equity_svg(curves: pd.DataFrame, title: str) -> str:
    """``curves``: one column per series (cumulative net return), indexed by bar time."""
    figure, axes = plt.subplots(figsize=(8, 3.2))
    for name in curves.columns:
        role = str(name).split()[-1]
        axes.plot(curves.index, curves[name], ROLE_STYLES.get(role, "-"), label=str(name))
    axes.axhline(0.0, color="grey", linewidth=0.6)
    axes.set_title(title)
    axes.set_ylabel("cumulative net return")
    axes.legend(loc="best", fontsize=8)
    figure.autofmt_xdate()
    return _svg(figure)


def heatmap_svg(matrix: pd.DataFrame, title: str) -> str:
    """``matrix``: features (rows) by checks (columns), the drift severity (1 = at the
    threshold); colours saturate at 3."""
    height = max(2.5, 0.18 * len(matrix.index) + 1.2)
    figure, axes = plt.subplots(figsize=(8, height))
    image = axes.imshow(
        np.clip(matrix.to_numpy(dtype=float), 0, 3), aspect="auto", cmap="magma_r", vmin=0, vmax=3
    )
    axes.set_yticks(range(len(matrix.index)), labels=list(matrix.index), fontsize=7)
    step = max(1, len(matrix.columns) // 12)
    ticks = list(range(0, len(matrix.columns), step))
    axes.set_xticks(ticks, labels=[str(matrix.columns[i]) for i in ticks], fontsize=7, rotation=45)
    axes.set_title(title)
    figure.colorbar(image, ax=axes, label="severity (1 = threshold)")
    return _svg(figure)


def bars_svg(values: dict[str, float | None], title: str, label: str) -> str:
    """A horizontal bar per key (missing values shown as 0, labelled "n/a")."""
    names = list(values)
    numbers = [0.0 if values[n] is None else float(values[n]) for n in names]
    figure, axes = plt.subplots(figsize=(6, 0.5 * len(names) + 1))
    colours = ["#2a7" if v >= 0 else "#c33" for v in numbers]
    axes.barh(names, numbers, color=colours)
    axes.axvline(0.0, color="grey", linewidth=0.6)
    for y, name in enumerate(names):
        text = "n/a" if values[name] is None else f"{numbers[y]:+.2f}"
        axes.annotate(text, (numbers[y], y), xytext=(3, -3), textcoords="offset points")
    axes.set_title(title)
    axes.set_xlabel(label)
    return _svg(figure)
