"""Line plots as PNG files, drawn with Pillow alone (no plotting library needed): the SWD curves of
model cards and of the recipe ablation, SWD against thousands of images seen, with the
real-vs-real floor drawn in as a dashed line.

    line_plot({"anime64": (kimg, swd)}, "SWD ×1e3 vs images seen", "kimg", "SWD ×1e3", out, floor=6.5)
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from PIL import Image, ImageDraw, ImageFont

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#000000", "#aec7e8"]


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About n round tick values covering [lo, hi]."""
    span = hi - lo or abs(hi) or 1.0
    step = 10 ** math.floor(math.log10(span / n))
    for m in (1, 2, 5, 10):
        if span / (m * step) <= n:
            step *= m
            break
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def line_plot(series: dict[str, tuple[Sequence[float], Sequence[float]]], title: str, xlabel: str, ylabel: str,
              out: str | Path, floor: float | None = None, floor_label: str = "real vs real",
              size: tuple[int, int] = (900, 520), log_y: bool = False) -> Path:
    """One line (with dots) per series; a dashed horizontal line at `floor`; a legend at the top right."""
    w, h = size
    left, right, top, bottom = 70, 20, 40, 50
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    try:
        font = ImageFont.load_default(size=13)  # Pillow >= 10.1: a scalable font with proper spacing
    except TypeError:
        font = ImageFont.load_default()
    pts = [(x, y) for xs, ys in series.values() for x, y in zip(xs, ys, strict=True) if y is not None and (y > 0 or not log_y)]
    ys_all = [y for _, y in pts] + ([floor] if floor else [])
    xs_all = [x for x, _ in pts] or [0.0, 1.0]
    fy = (lambda v: math.log10(v)) if log_y else (lambda v: v)
    y_lo, y_hi = (min(map(fy, ys_all)), max(map(fy, ys_all))) if ys_all else (0.0, 1.0)
    y_lo = min(y_lo, 0.0) if not log_y else y_lo
    x_lo, x_hi = min(xs_all), max(xs_all)
    x_hi = x_hi if x_hi > x_lo else x_lo + 1
    y_hi = y_hi if y_hi > y_lo else y_lo + 1

    def px(x: float, y: float) -> tuple[float, float]:
        return (left + (x - x_lo) / (x_hi - x_lo) * (w - left - right),
                h - bottom - (fy(y) - y_lo) / (y_hi - y_lo) * (h - top - bottom))

    d.rectangle([left, top, w - right, h - bottom], outline="#999999")
    for t in _ticks(x_lo, x_hi):
        X = px(t, 10 ** y_lo if log_y else y_lo)[0]
        d.line([X, h - bottom, X, h - bottom + 4], fill="#666666")
        d.text((X - 12, h - bottom + 6), f"{t:g}", fill="black", font=font)
    for t in _ticks(y_lo, y_hi):
        Y = px(x_lo, 10 ** t if log_y else t)[1]
        d.line([left - 4, Y, w - right, Y], fill="#eeeeee")
        d.text((4, Y - 6), f"{10 ** t:.3g}" if log_y else f"{t:g}", fill="black", font=font)
    if floor:
        Y = px(x_lo, floor)[1]
        for X in range(left, w - right, 12):
            d.line([X, Y, min(X + 6, w - right), Y], fill="#555555", width=2)
        d.text((left + 6, Y - 14), f"{floor_label} ({floor:g})", fill="#555555", font=font)
    for i, (name, (xs, ys)) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        p = [px(x, y) for x, y in zip(xs, ys, strict=True) if y is not None and (y > 0 or not log_y)]
        if len(p) > 1:
            d.line(p, fill=color, width=2)
        for X, Y in p:
            d.ellipse([X - 2.5, Y - 2.5, X + 2.5, Y + 2.5], fill=color)
        d.rectangle([w - right - 170, top + 8 + 14 * i, w - right - 160, top + 16 + 14 * i], fill=color)
        d.text((w - right - 155, top + 6 + 14 * i), name[:26], fill="black", font=font)
    d.text((left, 12), title, fill="black", font=font)
    d.text(((w - left) // 2, h - 18), xlabel, fill="black", font=font)
    d.text((4, top - 16), ylabel, fill="black", font=font)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out)
    return out
