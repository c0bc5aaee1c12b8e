"""Ablation rows -> mean and spread over seeds (CSV, Markdown) and a metric-vs-defect-rate plot (PIL).

Every defect curve starts at rate 0 from the clean test set, so each panel shows how fast a regime
degrades from its own clean score.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["markdown_table", "plot_metric", "regime_table", "summarise", "write_report"]

_COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
            (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))  # fmt: skip
_LOWER_IS_BETTER = {"vi_split": True, "vi_merge": True, "vi": True, "arand": True, "boundary_f1": False}


def summarise(rows: Sequence[dict[str, Any]], metrics: Sequence[str]) -> list[dict[str, Any]]:
    """One row per (dataset, regime, defect, rate): ``<metric>_mean``, ``<metric>_std`` (over seeds, ddof 0), ``seeds``."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["regime"], r["defect"], float(r["rate"])), []).append(r)
    out = []
    for (dataset, regime, defect, rate), rs in groups.items():
        row: dict[str, Any] = {
            "dataset": dataset,
            "regime": regime,
            "defect": defect,
            "rate": rate,
            "seeds": len(rs),
        }
        for m in metrics:
            values = np.array([float(r[m]) for r in rs if r[m] is not None])
            row[f"{m}_mean"] = float(values.mean()) if values.size else None
            row[f"{m}_std"] = float(values.std()) if values.size else None
        out.append(row)
    return out


def _cell(row: dict[str, Any] | None, metric: str) -> str:
    if row is None or row[f"{metric}_mean"] is None:
        return "-"
    return f"{row[f'{metric}_mean']:.3f} ± {row[f'{metric}_std']:.3f}"


def markdown_table(summary: Sequence[dict[str, Any]], metric: str, dataset: str) -> str:
    """A Markdown table of ``metric`` (mean ± std over seeds): one line per (defect, rate), one column per regime."""
    rows = [r for r in summary if r["dataset"] == dataset]
    regimes = list(dict.fromkeys(r["regime"] for r in rows))
    cases = list(
        dict.fromkeys((r["defect"], r["rate"]) for r in rows)
    )  # clean first, then as the run listed them
    index = {(r["regime"], r["defect"], r["rate"]): r for r in rows}
    lines = [f"| defect | rate | {' | '.join(regimes)} |", "|---|---|" + "---|" * len(regimes)]
    for defect, rate in cases:
        cells = [_cell(index.get((g, defect, rate)), metric) for g in regimes]
        lines.append(f"| {defect} | {rate:g} | {' | '.join(cells)} |")
    return "\n".join(lines)


def regime_table(rows: Sequence[dict[str, Any]], metric: str, dataset: str) -> str:
    """The headline: one line per regime; columns clean, each defect at its highest rate, and the mean over
    every corrupted set (computed per seed first). Cells: mean ± std over seeds."""
    rows = [r for r in rows if r["dataset"] == dataset and r[metric] is not None]
    regimes = list(dict.fromkeys(r["regime"] for r in rows))
    top = {}
    for r in rows:
        top[r["defect"]] = max(top.get(r["defect"], 0.0), float(r["rate"]))
    kinds = [k for k in top if k != "clean"]

    def cell(values: list[float]) -> str:
        return f"{np.mean(values):.3f} ± {np.std(values):.3f}" if values else "-"

    head = ["clean", *(f"{k} {top[k]:g}" for k in kinds), "all corrupted (mean)"]
    lines = [f"| regime | {' | '.join(head)} |", "|---|" + "---|" * len(head)]
    for g in regimes:
        mine = [r for r in rows if r["regime"] == g]
        cells = [
            cell([r[metric] for r in mine if r["defect"] == k and float(r["rate"]) == top[k]]) for k in top
        ]
        seeds = sorted({r["seed"] for r in mine})
        per_seed = [
            np.mean([r[metric] for r in mine if r["seed"] == s and r["defect"] != "clean"]) for s in seeds
        ]
        lines.append(
            f"| {g} | {' | '.join(cells)} | {cell([float(v) for v in per_seed if not np.isnan(v)])} |"
        )
    return "\n".join(lines)


def plot_metric(summary: Sequence[dict[str, Any]], metric: str, dataset: str, path: str | Path) -> Path:
    """One panel per defect kind: ``metric`` (mean, bars = ±1 std over seeds) against the rate, a line per regime."""
    rows = [r for r in summary if r["dataset"] == dataset and r[f"{metric}_mean"] is not None]
    regimes = list(dict.fromkeys(r["regime"] for r in rows))
    kinds = [k for k in dict.fromkeys(r["defect"] for r in rows) if k != "clean"]
    clean = {r["regime"]: r for r in rows if r["defect"] == "clean"}
    cols, pw, ph, pad = 4, 260, 200, 36
    panels = len(kinds) + 1  # the last panel holds the legend
    nrows = -(-panels // cols)
    img = Image.new("RGB", (cols * pw, nrows * ph + 24), "white")
    draw = ImageDraw.Draw(img)
    better = "lower" if _LOWER_IS_BETTER.get(metric, True) else "higher"
    draw.text(
        (8, 6),
        f"{dataset}: {metric} ({better} is better) vs defect rate; bars: +-1 std over seeds",
        fill="black",
    )
    lo = min(r[f"{metric}_mean"] - r[f"{metric}_std"] for r in rows)
    hi = max(r[f"{metric}_mean"] + r[f"{metric}_std"] for r in rows)
    hi = hi if hi > lo else lo + 1.0
    max_rate = max([r["rate"] for r in rows] + [1e-9])
    for i, kind in enumerate(kinds):
        x0, y0 = (i % cols) * pw + pad, (i // cols) * ph + 24 + 18
        w, h = pw - pad - 12, ph - 18 - 30
        draw.rectangle((x0, y0, x0 + w, y0 + h), outline=(160, 160, 160))
        draw.text((x0 + 4, y0 - 14), kind, fill="black")
        for v in (lo, hi):
            draw.text((x0 - pad + 2, y0 + h - (v - lo) / (hi - lo) * h - 5), f"{v:.2f}", fill=(90, 90, 90))
        draw.text((x0, y0 + h + 4), "0", fill=(90, 90, 90))
        draw.text((x0 + w - 20, y0 + h + 4), f"{max_rate:g}", fill=(90, 90, 90))

        def xy(rate: float, value: float, x0=x0, y0=y0, w=w, h=h) -> tuple[float, float]:
            return x0 + rate / max_rate * w, y0 + h - (value - lo) / (hi - lo) * h

        for j, regime in enumerate(regimes):
            colour = _COLOURS[j % len(_COLOURS)]
            pts = [clean[regime]] if regime in clean else []
            pts += sorted(
                (r for r in rows if r["regime"] == regime and r["defect"] == kind), key=lambda r: r["rate"]
            )
            line = [xy(r["rate"], r[f"{metric}_mean"]) for r in pts]
            if len(line) > 1:
                draw.line(line, fill=colour, width=2)
            for r, (px, py) in zip(pts, line, strict=True):
                _, top = xy(r["rate"], r[f"{metric}_mean"] + r[f"{metric}_std"])
                _, bottom = xy(r["rate"], r[f"{metric}_mean"] - r[f"{metric}_std"])
                draw.line((px, top, px, bottom), fill=colour, width=1)
                draw.ellipse((px - 2, py - 2, px + 2, py + 2), fill=colour)
    lx, ly = (len(kinds) % cols) * pw + pad, (len(kinds) // cols) * ph + 24 + 18
    for j, regime in enumerate(regimes):
        colour = _COLOURS[j % len(_COLOURS)]
        draw.line((lx, ly + 16 * j + 6, lx + 24, ly + 16 * j + 6), fill=colour, width=3)
        draw.text((lx + 30, ly + 16 * j), regime, fill="black")
    path = Path(path)
    img.save(path)
    return path


def write_report(rows: Sequence[dict[str, Any]], out: str | Path, metrics: Sequence[str]) -> list[Path]:
    """``summary.csv``, ``summary.md`` (VI, adapted Rand, boundary F1 tables per dataset) and the plots, in ``out``."""
    out = Path(out)
    summary = summarise(rows, metrics)
    with open(out / "summary.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(summary[0]))
        writer.writeheader()
        writer.writerows(summary)
    datasets = list(dict.fromkeys(r["dataset"] for r in summary))
    text = []
    for dataset in datasets:
        for metric in ("vi", "arand", "boundary_f1"):
            if metric in metrics:
                better = "lower" if _LOWER_IS_BETTER[metric] else "higher"
                text += [f"### {dataset}: {metric} (mean ± std over seeds; {better} is better)", "",
                         regime_table(rows, metric, dataset), "", markdown_table(summary, metric, dataset), ""]  # fmt: skip
    (out / "summary.md").write_text("\n".join(text))
    written = [out / "summary.csv", out / "summary.md"]
    for dataset in datasets:
        for metric in ("vi", "arand"):
            if metric in metrics:
                written.append(
                    plot_metric(summary, metric, dataset, out / f"robustness_{dataset}_{metric}.png")
                )
    return written
