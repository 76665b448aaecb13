"""A run's fixed-noise grids over its epochs: a filmstrip (epochs side by side) and a timelapse
(an animated GIF, one frame per epoch).

Every epoch the trainer draws the same fixed noise into samples/epoch_NNNN.png, so face i of one
epoch grid is face i of every other: the filmstrip puts face i of each epoch in one row.

    python -m animegan timelapse RUN --out run.gif [--fps 4] [--max-side 800]   (the verb: cli.py)

MP4 is not offered: it needs an encoder (ffmpeg or PyAV) that is not a dependency of this package.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

from PIL import Image, ImageDraw

from .images import save_gif
from .rundir import Run

PADDING = 2          # the trainer's grids: torchvision save_image(padding=2)
LABEL_H = 14         # pixels of the epoch label above (filmstrip) or below (timelapse) the faces
BACKGROUND = (14, 17, 23)
FOREGROUND = (250, 250, 250)


def epoch_grids(run: Run) -> list[tuple[int, Path]]:
    """(epoch, path) of every epoch grid, oldest first."""
    return run.grids()


def pick_epochs(epochs: list[int], k: int) -> list[int]:
    """At most k epochs, evenly spread, always with the first and the last."""
    if k <= 0 or not epochs:
        return []
    if len(epochs) <= k:
        return list(epochs)
    if k == 1:
        return [epochs[-1]]
    idx = sorted({round(i * (len(epochs) - 1) / (k - 1)) for i in range(k)})
    return [epochs[i] for i in idx]


def grid_faces(grid: Image.Image, size: int, n: int | None = None) -> list[Image.Image]:
    """The faces of a trainer's grid (faces of `size` px, PADDING between and around them), row by
    row; the first n of them when n is given."""
    cell = size + PADDING
    cols, rows = max(1, (grid.width - PADDING) // cell), max(1, (grid.height - PADDING) // cell)
    out = []
    for r in range(rows):
        for c in range(cols):
            if n is not None and len(out) >= n:
                return out
            x, y = PADDING + c * cell, PADDING + r * cell
            out.append(grid.crop((x, y, x + size, y + size)))
    return out


def _img_size(run: Run, grid: Image.Image) -> int:
    size = run.config().get("img_size")
    try:
        size = int(size)
    except (TypeError, ValueError):
        size = 0
    return size if 0 < size <= grid.width - 2 * PADDING else grid.width - 2 * PADDING


def _open(path: Path) -> Image.Image | None:
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except OSError:
        return None  # deleted or being replaced meanwhile: that epoch is left out


def filmstrip(run: Run, faces: int = 4, max_epochs: int = 8, zoom: int = 1) -> Image.Image | None:
    """Face i of each epoch's grid in row i, one column per epoch (at most `max_epochs`, evenly
    spread, first and last included), each column headed by its epoch; None without grids.
    `zoom` enlarges the faces (nearest neighbour: pixels stay pixels)."""
    grids = dict(epoch_grids(run))
    columns = []
    for ep in pick_epochs(list(grids), max_epochs):
        g = _open(grids[ep])
        if g is not None:
            columns.append((ep, grid_faces(g, _img_size(run, g), max(1, faces))))
    if not columns:
        return None
    size = columns[0][1][0].width * max(1, zoom)
    rows = max(len(f) for _, f in columns)
    cell = size + PADDING
    strip = Image.new("RGB", (PADDING + cell * len(columns), LABEL_H + PADDING + cell * rows), BACKGROUND)
    draw = ImageDraw.Draw(strip)
    for c, (ep, fs) in enumerate(columns):
        x = PADDING + c * cell
        draw.text((x + 1, 1), f"ep {ep}", fill=FOREGROUND)
        for r, face in enumerate(fs):
            strip.paste(face.resize((size, size), Image.NEAREST), (x, LABEL_H + PADDING + r * cell))
    return strip


def frames(run: Run, max_side: int = 800, label: bool = True) -> list[Image.Image]:
    """One frame per epoch grid, at most `max_side` pixels wide (shrunk, never enlarged), with
    "epoch N / last" under the faces when `label`."""
    grids = epoch_grids(run)
    last = grids[-1][0] if grids else 0
    out = []
    for ep, path in grids:
        g = _open(path)
        if g is None:
            continue
        if g.width > max_side:
            g = g.resize((max_side, max(1, round(g.height * max_side / g.width))), Image.LANCZOS)
        if label:
            framed = Image.new("RGB", (g.width, g.height + LABEL_H), BACKGROUND)
            framed.paste(g, (0, 0))
            ImageDraw.Draw(framed).text((3, g.height + 1), f"{run.name}  epoch {ep} / {last}", fill=FOREGROUND)
            g = framed
        out.append(g)
    return out


def write_gif(run: Run, out: str | Path | BinaryIO, fps: float = 4, max_side: int = 800, hold: int = 4) -> int:
    """The run's timelapse as an animated GIF (looping; the last epoch held `hold` frames longer);
    returns the number of epochs in it. ValueError when the run has no epoch grid yet."""
    pics = frames(run, max_side=max_side)
    if not pics:
        raise ValueError(f"run {run.name} has no epoch grids yet (samples/epoch_NNNN.png is written at the end "
                         f"of each epoch)")
    ms = max(20, int(round(1000.0 / max(float(fps), 0.01))))
    durations = [ms] * (len(pics) - 1) + [ms * max(1, hold)]
    save_gif(pics, out, durations if len(pics) > 1 else ms)
    return len(pics)


def gif_bytes(run: Run, fps: float = 4, max_side: int = 800) -> bytes:
    buf = io.BytesIO()
    write_gif(run, buf, fps=fps, max_side=max_side)
    return buf.getvalue()


def timelapse_name(run: Run, ext: str = "gif") -> str:
    return f"{run.name}-timelapse.{ext}"
