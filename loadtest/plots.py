"""The benchmarks' pictures, drawn with matplotlib when it is installed (it is not a
dependency of the server: `.venv/bin/pip install matplotlib`). Takes plain numbers, so
it depends on no other module of the load generator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# One system's run: (name, latencies in ms, completions per 100 ms, p99 in ms or None).
Series = tuple[str, list[float], list[int], float | None]


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return None
    return plt


def latency_and_throughput(path: Path, name: str, series: list[Series]) -> None:
    """Left: latency CDF per system (log x). Right: completions per second over time."""
    plt = _pyplot()
    if plt is None:
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for system, latencies, timeline, p99 in series:
        if latencies:
            lat = sorted(latencies)
            ys = [i / len(lat) for i in range(len(lat))]
            left.plot(lat, ys, label=f"{system} (p99 {p99} ms)")
        if timeline:
            # 100 ms bins; runs longer than a minute are drawn per second (readable).
            per = 10 if len(timeline) > 600 else 1
            bins = [sum(timeline[i : i + per]) for i in range(0, len(timeline), per)]
            right.plot(
                [i * per / 10 for i in range(len(bins))],
                [c * 10 / per for c in bins],
                label=system,
            )
    left.set_xscale("log")
    left.set_xlabel("latency (ms, log)")
    left.set_ylabel("fraction ≤ x")
    left.set_title(f"{name}: latency CDF")
    left.grid(True, alpha=0.3)
    right.set_xlabel("seconds")
    right.set_ylabel("completions / s")
    right.set_title(f"{name}: throughput over time")
    right.grid(True, alpha=0.3)
    for axis in (left, right):
        if axis.lines:
            axis.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def memory(
    path: Path,
    samples_mib: list[tuple[float, float]],
    *,
    label: str,
    limit_mib: float,
    limit_label: str,
    ylabel: str,
    title: str,
    size: tuple[float, float] = (9, 4),
    title_size: float | None = None,
) -> None:
    """One process's resident memory over a run, against its budget (a dashed line)."""
    plt = _pyplot()
    if plt is None:
        return
    fig, axis = plt.subplots(figsize=size)
    axis.plot([t for t, _ in samples_mib], [m for _, m in samples_mib], label=label)
    axis.axhline(limit_mib, color="red", linestyle="--", label=limit_label)
    axis.set_xlabel("seconds")
    axis.set_ylabel(ylabel)
    axis.set_title(title, fontsize=title_size)
    axis.grid(True, alpha=0.3)
    axis.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def bars(
    path: Path,
    title: str,
    labels: list[str],
    series: dict[str, list[float]],
    fmt: str = "%.0f",
    own_scales: bool = False,
) -> None:
    """Grouped bars: one group per label, one bar per series (e.g. a value per setting),
    each labelled with its value (`fmt`). `own_scales`: each label in a panel of its own,
    with its own y axis (for measures of different units, e.g. deliveries/s and µs)."""
    plt = _pyplot()
    if plt is None:
        return
    panels = len(labels) if own_scales else 1
    fig, axes = plt.subplots(1, panels, figsize=(9, 4), squeeze=False)
    width = 0.8 / max(len(series), 1)
    groups = [[i] for i in range(len(labels))] if own_scales else [list(range(len(labels)))]
    for axis, shown in zip(axes[0], groups, strict=True):
        for n, (name, values) in enumerate(series.items()):
            xs = [k + n * width for k in range(len(shown))]
            drawn = axis.bar(xs, [values[i] for i in shown], width, label=name)
            axis.bar_label(drawn, fmt=fmt, fontsize=8)
        centres = [k + width * (len(series) - 1) / 2 for k in range(len(shown))]
        axis.set_xticks(centres, [labels[i] for i in shown])
        axis.grid(True, axis="y", alpha=0.3)
        axis.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def lines(
    path: Path,
    title: str,
    series: dict[str, list[tuple[float, float]]],
    xlabel: str,
    ylabel: str,
    log_y: bool = False,
) -> None:
    """One line per series of (x, y) points, x on a log scale (sizes: 10, 100, 1,000...),
    y too if `log_y` (costs that differ by orders of magnitude)."""
    plt = _pyplot()
    if plt is None:
        return
    series = {name: [(x, y) for x, y in points if y > 0] for name, points in series.items()}
    if not any(series.values()):
        print(f"nothing to draw in {path.name}: no positive values")
        return
    fig, axis = plt.subplots(figsize=(9, 4))
    for name, points in series.items():
        axis.plot([x for x, _ in points], [y for _, y in points], marker="o", label=name)
        for x, y in points:
            axis.annotate(f"{y:.2f}", (x, y), textcoords="offset points", xytext=(0, 6), fontsize=8)
    axis.set_xscale("log")
    if log_y:
        axis.set_yscale("log")
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.grid(True, alpha=0.3)
    if axis.lines:
        axis.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
