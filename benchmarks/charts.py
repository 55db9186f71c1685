"""One SVG chart per scenario: ``python benchmarks/charts.py < charts.json`` (run.py calls it).

Each chart has a horizontal bar per row (server), from 1 to the row's ratio to the scenario's
stdlib baseline, on a log axis, with the row's min-max (over its repeats, divided by the
baseline's median) as a whisker, the baseline marked at 1, and the C ceiling (``c-epoll``,
where the scenario has it) as a dashed line instead of a bar. The label right of each bar gives
the ratio and the median. When the baseline row did not run (``--only`` picked a subset without
it) the chart shows the medians themselves instead.

Input, on stdin::

    {"out_dir": "...", "charts": [{"file": "chart-echo-64B-x1.svg", "scenario": "echo 64B x1",
      "metric": "req/s", "higher_better": true, "baseline": "stdlib-ThreadingTCPServer",
      "ceiling": "c-epoll", "rows": [{"name": "...", "median": 1.0, "min": 1.0, "max": 1.0}]}]}

Prints the path of each chart written. Needs matplotlib (run.py installs it on demand, as a
bench-only dependency) and uses its Agg backend: no display is needed.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

COLOURS = {
    "typedserve": "#d95f02",
    "stdlib": "#7f7f7f",
    "asyncio": "#1f78b4",
    "uvloop": "#6a3d9a",
    "other": "#a6a6a6",
}
NICE_TICKS = (
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 1.0,
    1.1, 1.2, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0,
)  # fmt: skip


def family(name: str) -> str:
    """Which kind of server a row is, for its colour."""
    if "typedserve" in name:
        return "typedserve"
    if "uvloop" in name:
        return "uvloop"
    if "asyncio" in name:
        return "asyncio"
    if "stdlib" in name or "socketserver" in name or "http.server" in name:
        return "stdlib"
    return "other"


def fmt_number(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def fmt_ratio(ratio: float) -> str:
    return f"{ratio:.2f}x" if ratio >= 0.1 else f"{ratio:.2g}x"


def ticks_between(low: float, high: float) -> list[float]:
    """Round tick values within ``[low, high]`` (only 1-2-5 ones over a wide range), at least
    the two ends when none fall in."""
    wide = high / low > 6
    inside = [
        t
        for t in NICE_TICKS
        if low <= t <= high
        and (not wide or round(t / 10 ** math.floor(math.log10(t)), 6) in (1, 2, 5))
    ]
    if len(inside) >= 2:
        return inside
    return sorted({*inside, float(f"{low:.2g}"), float(f"{high:.2g}")})


def draw(chart: dict[str, Any], path: Path) -> None:
    rows: list[dict[str, Any]] = [r for r in chart["rows"] if r["median"] is not None]
    ceiling_name: str = chart.get("ceiling") or ""
    ceiling = next((r for r in rows if r["name"] == ceiling_name), None)
    bars = [r for r in rows if r is not ceiling]
    base = next((r for r in rows if r["name"] == chart["baseline"]), None)
    metric: str = chart["metric"]
    better = "higher is better" if chart["higher_better"] else "lower is better"
    if base is not None and base["median"] > 0:
        scale, origin = float(base["median"]), 1.0
        title = f"{chart['scenario']}: ratio to {chart['baseline']} ({metric}; {better})"
    else:  # no baseline ran: the medians themselves
        scale, origin = 1.0, 0.0
        title = f"{chart['scenario']}: {metric} ({better}; baseline {chart['baseline']} not run)"

    values = [r["median"] / scale for r in bars]
    lows = [r["min"] / scale for r in bars]
    highs = [r["max"] / scale for r in bars]
    span = [v for v in (*values, *lows, *highs) if v > 0]  # a zero (a server that stalled)
    if not span:  # has no place on a log axis: its bar runs off the left edge
        span = [1.0]
    if ceiling is not None:
        span.append(ceiling["median"] / scale)
    if origin:
        span.append(origin)
    low, high = min(span) / 1.15, max(span) * 1.15
    if high / low < 1.3:  # a scenario where every row is within a few percent
        mid = math.sqrt(low * high)
        low, high = mid / 1.14, mid * 1.14
    start = origin if origin else low

    fig, ax = plt.subplots(figsize=(8.0, 0.34 * len(bars) + 1.4))
    ys = list(range(len(bars)))
    for y, row, value, lo, hi in zip(ys, bars, values, lows, highs, strict=True):
        colour = COLOURS[family(row["name"])]
        shown = value if value > 0 else low  # zero: to the left edge
        ax.barh(y, shown - start, left=start, height=0.6, color=colour)
        if hi > lo > 0:
            ax.plot([lo, hi], [y, y], color="black", linewidth=0.8)
        if row is base:
            ax.plot([value], [y], marker="o", color="black", markersize=3)
        label = fmt_number(row["median"]) + f" {metric}"
        if origin:
            label = f"{fmt_ratio(value)}  {label}" + ("  (baseline)" if row is base else "")
        ax.text(1.01, y, label, transform=ax.get_yaxis_transform(), va="center", fontsize=8)
    if origin:
        ax.axvline(origin, color="black", linewidth=0.8)
    if ceiling is not None:
        at = ceiling["median"] / scale
        ax.axvline(at, color="#e31a1c", linestyle="--", linewidth=1.2)
        ceiling_label = f"C ceiling ({ceiling_name}) {fmt_ratio(at) if origin else ''}".strip()
        ax.text(
            at,
            1.01,
            ceiling_label,
            transform=ax.get_xaxis_transform(),  # x in data, y in axes fractions: above the top
            color="#e31a1c",
            ha="center",
            va="bottom",
            fontsize=8,
        )

    ax.set_xscale("log")
    ax.set_xlim(low, high)
    ax.xaxis.set_major_locator(FixedLocator(ticks_between(low, high)))
    ax.xaxis.set_minor_locator(NullLocator())
    suffix = "x" if origin else ""
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}{suffix}"))
    ax.set_yticks(ys, [r["name"] for r in bars], fontsize=8)
    ax.set_ylim(len(bars) - 0.5, -0.5)  # first row on top
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    ax.set_title(title, fontsize=9, loc="left", pad=16 if ceiling is not None else 6)
    fig.savefig(path, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)


def main() -> int:
    spec: dict[str, Any] = json.load(sys.stdin)
    out_dir = Path(spec["out_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    plt.rcParams["svg.hashsalt"] = "typedserve-benchmarks"  # stable ids: diffable files
    plt.rcParams["svg.fonttype"] = "none"  # text stays text: small, searchable files
    for chart in spec["charts"]:
        path = out_dir / chart["file"]
        draw(chart, path)
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
