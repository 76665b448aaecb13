"""The built-in synthetic anime-face set, drawn procedurally with Pillow.

So that the whole tool works on a machine with no data and no network, this module draws
its own cartoon anime avatars: an oval face with a small chin, big vertically-oval eyes
(iris darker at the top, pupil, white highlights, a thick upper lash line), eyebrows, a
tiny nose and mouth, optional blush, hair in one of the 12 common anime hair colours with
bangs over the forehead, side locks beside the cheeks and a hair mass behind the head,
over a plain or gently graded pastel background. Pose (tilt), size and position vary a
little from face to face.

Every face is a pure function of ``(seed, index)``: the random stream is
``random.Random("synth-v1:{seed}:{index}")`` (string seeds are hashed with SHA-512 by
:mod:`random`, never with Python's salted ``hash()``), so the serial and the parallel
writers give byte-identical files.

Faces are drawn at ``SUPERSAMPLE``× the output size and downsampled with LANCZOS, which
antialiases the flat-colour shapes. No torch here: only Pillow (and the standard library).
"""

from __future__ import annotations

import csv
import json
import math
import multiprocessing as mp
import os
import random
import re
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable

from PIL import Image, ImageDraw, PngImagePlugin  # noqa: F401  (PNG plugin imported up front for forked workers)

__all__ = [
    "HAIR_COLORS",
    "EYE_COLORS",
    "SKIN_TONES",
    "BACKGROUNDS",
    "HAIR_STYLES",
    "EXPRESSIONS",
    "LABEL_FIELDS",
    "SYNTH_SIZE",
    "DEFAULT_N",
    "VERSION",
    "render_face",
    "write_synthetic",
    "is_complete",
    "grid",
]

RGB = tuple[int, int, int]

SYNTH_SIZE = 96
DEFAULT_N = 10_000
VERSION = 1
SUPERSAMPLE = 2  # internal drawing resolution = SUPERSAMPLE * size (192 px for 96 px faces)

# The 12 hair colours and 11 eye colours of the classic anime-face tag sets.
HAIR_COLORS: dict[str, RGB] = {
    "blonde": (246, 214, 112),
    "brown": (138, 88, 52),
    "black": (48, 44, 60),
    "blue": (64, 108, 214),
    "red": (206, 48, 54),
    "pink": (246, 152, 192),
    "purple": (146, 88, 198),
    "green": (78, 166, 92),
    "white": (234, 234, 242),
    "orange": (244, 146, 52),
    "aqua": (80, 204, 212),
    "gray": (146, 146, 158),
}

EYE_COLORS: dict[str, RGB] = {
    "blue": (52, 116, 226),
    "red": (214, 42, 54),
    "brown": (150, 92, 46),
    "green": (52, 168, 76),
    "purple": (148, 76, 208),
    "yellow": (236, 198, 40),
    "pink": (242, 112, 172),
    "aqua": (40, 194, 204),
    "black": (52, 46, 58),
    "orange": (242, 134, 32),
    "gray": (132, 138, 150),
}

SKIN_TONES: dict[str, RGB] = {
    "porcelain": (255, 236, 226),
    "fair": (253, 224, 204),
    "peach": (248, 208, 180),
    "tan": (226, 178, 138),
    "brown": (170, 118, 84),
}
_SKIN_WEIGHTS = (3, 4, 3, 2, 1)

# Pastel background colours; the label is the name, with "_gradient" appended when graded.
BACKGROUNDS: dict[str, RGB] = {
    "white": (246, 246, 248),
    "cream": (250, 242, 222),
    "sky": (192, 222, 246),
    "mint": (202, 236, 216),
    "lavender": (222, 212, 242),
    "pink": (250, 216, 226),
    "peach": (252, 222, 198),
    "gray": (212, 212, 218),
    "lemon": (248, 242, 192),
}

HAIR_STYLES = ("straight", "parted", "spiky", "side_swept")  # the bangs
HAIR_LENGTHS = ("short", "bob", "long", "twintails")  # not a label; adds variety
EXPRESSIONS = ("smile", "open", "line", "o", "cat")
LABEL_FIELDS = ("hair_color", "eye_color", "hair_style", "expression", "blush", "skin_tone", "background")
CSV_FIELDS = ("index", "file") + LABEL_FIELDS

_CLOTHES = [(60, 70, 110), (240, 240, 245), (180, 60, 70), (70, 110, 90), (40, 40, 50), (120, 90, 160), (230, 180, 80)]
_ACCENTS = [(230, 60, 80), (250, 250, 250), (70, 120, 230), (250, 200, 60), (40, 40, 50), (240, 140, 190)]


# ----------------------------------------------------------------------------- colours
def _mix(a: Iterable[float], b: Iterable[float], t: float) -> RGB:
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


def _jitter(rng: random.Random, c: RGB, amount: int) -> RGB:
    return tuple(max(0, min(255, v + rng.randint(-amount, amount))) for v in c)  # type: ignore[return-value]


# ----------------------------------------------------------------------------- geometry (design space is 96 x 96)
@lru_cache(maxsize=512)
def _unit_arc(a0: float, a1: float, n: int) -> tuple[tuple[float, float], ...]:
    return tuple((math.cos(a0 + (a1 - a0) * i / n), math.sin(a0 + (a1 - a0) * i / n)) for i in range(n + 1))


def _ellipse(cx: float, cy: float, rx: float, ry: float, a0: float = 0.0, a1: float = 2 * math.pi, n: int = 28):
    return [(cx + rx * c, cy + ry * s) for c, s in _unit_arc(a0, a1, n)]


def _bez(p0, p1, p2, n: int = 8):
    """Quadratic Bezier from p0 to p2 (control p1), n+1 points including both ends."""
    out = []
    for i in range(n + 1):
        t = i / n
        u = 1 - t
        out.append((u * u * p0[0] + 2 * u * t * p1[0] + t * t * p2[0], u * u * p0[1] + 2 * u * t * p1[1] + t * t * p2[1]))
    return out


class _Pen:
    """Draws design-space shapes (96-unit square, head centred at (48, 52)) through a pose transform."""

    HX, HY = 48.0, 52.0

    def __init__(self, img: Image.Image, k: float, angle_deg: float, scale: float, dx: float, dy: float):
        self.d = ImageDraw.Draw(img)
        self.k = k
        a = math.radians(angle_deg)
        self.c, self.s = math.cos(a) * scale, math.sin(a) * scale
        self.scale = scale
        self.ox, self.oy = self.HX + dx, self.HY + dy

    def _t(self, pts):
        c, s, k, ox, oy, hx, hy = self.c, self.s, self.k, self.ox, self.oy, self.HX, self.HY
        return [((ox + c * (x - hx) - s * (y - hy)) * k, (oy + s * (x - hx) + c * (y - hy)) * k) for x, y in pts]

    def w(self, width: float) -> int:
        return max(1, int(round(width * self.scale * self.k)))

    def poly(self, pts, fill=None, outline=None, width: float = 0.8):
        if outline is None:
            self.d.polygon(self._t(pts), fill=fill)
        else:
            self.d.polygon(self._t(pts), fill=fill, outline=outline, width=self.w(width))

    def line(self, pts, fill, width: float = 0.8):
        self.d.line(self._t(pts), fill=fill, width=self.w(width), joint="curve")

    def ell(self, cx, cy, rx, ry, fill=None, outline=None, width: float = 0.8, n: int = 28):
        self.poly(_ellipse(cx, cy, rx, ry, n=n)[:-1], fill=fill, outline=outline, width=width)


@lru_cache(maxsize=8)
def _gradient_mask(side: int) -> Image.Image:
    return Image.linear_gradient("L").resize((side, side), Image.BILINEAR)


def _background(rng: random.Random, side: int) -> tuple[Image.Image, str]:
    name = rng.choice(list(BACKGROUNDS))
    top = BACKGROUNDS[name]
    if rng.random() < 0.5:
        return Image.new("RGB", (side, side), top), name
    other = BACKGROUNDS[rng.choice(list(BACKGROUNDS))]
    bottom = _mix(top, other if other != top else (255, 255, 255), rng.uniform(0.45, 0.8))
    img = Image.composite(Image.new("RGB", (side, side), bottom), Image.new("RGB", (side, side), top), _gradient_mask(side))
    return img, name + "_gradient"


# ----------------------------------------------------------------------------- one face
def _rng(seed: int, index: int) -> random.Random:
    return random.Random(f"synth-v{VERSION}:{int(seed)}:{int(index)}")


def render_face(seed: int, index: int, size: int = SYNTH_SIZE) -> tuple[Image.Image, dict]:
    """RGB image (size x size) of face `index` of set `seed`, and its labels.

    Labels: hair_color, eye_color (keys of HAIR_COLORS / EYE_COLORS), hair_style (the bangs:
    one of HAIR_STYLES), expression (one of EXPRESSIONS), blush (bool), skin_tone (a key of
    SKIN_TONES), background (a key of BACKGROUNDS, with "_gradient" appended when graded).
    """
    rng = _rng(seed, index)
    side = int(size) * SUPERSAMPLE
    k = side / 96.0

    # ---- random choices, in a fixed order (a few more are drawn below, also in a fixed order)
    img, bg_label = _background(rng, side)
    hair_name = rng.choice(list(HAIR_COLORS))
    eye_name = rng.choice(list(EYE_COLORS))
    skin_name = rng.choices(list(SKIN_TONES), weights=_SKIN_WEIGHTS)[0]
    style = rng.choice(HAIR_STYLES)
    length = rng.choice(HAIR_LENGTHS)
    expression = rng.choice(EXPRESSIONS)
    blush = rng.random() < 0.45

    hair = _jitter(rng, HAIR_COLORS[hair_name], 6)
    iris = _jitter(rng, EYE_COLORS[eye_name], 6)
    skin = SKIN_TONES[skin_name]
    clothes = rng.choice(_CLOTHES)
    accent = rng.choice(_ACCENTS)

    angle = rng.uniform(-8.0, 8.0)
    scale = rng.uniform(0.92, 1.05)
    dx, dy = rng.uniform(-3.0, 3.0), rng.uniform(-2.5, 2.5)

    face_rx = rng.uniform(19.5, 21.5)
    chin_y = rng.uniform(78.0, 81.5)
    jaw_p = rng.uniform(1.6, 2.4)
    eye_y = rng.uniform(54.0, 56.5)
    eye_dx = rng.uniform(9.8, 11.2)
    eye_rx = rng.uniform(5.3, 6.3)
    eye_ry = eye_rx * rng.uniform(1.18, 1.38)
    brow_lift = rng.uniform(-0.8, 1.2)
    look = rng.uniform(-0.6, 0.6)  # gaze: iris shift in x
    mouth_dx = rng.uniform(-0.6, 0.6)
    part_x = 48 + rng.uniform(-5, 5)
    sweep = rng.choice((-1, 1))
    n_strands = rng.randint(5, 8)
    strand_jit = [rng.uniform(-1.0, 1.0) for _ in range(12)]
    lock_len = {
        "short": rng.uniform(64, 70),
        "bob": rng.uniform(74, 80),
        "long": rng.uniform(84, 94),
        "twintails": rng.uniform(70, 78),
    }[length]
    back_len = {"short": rng.uniform(60, 66), "bob": rng.uniform(76, 82), "long": 104.0, "twintails": rng.uniform(60, 66)}[length]
    has_ring = rng.random() < 0.8
    has_accessory = rng.random() < 0.3
    acc_side = rng.choice((-1, 1))

    # ---- derived colours
    hair_shadow = _mix(hair, (40, 24, 70), 0.32)
    hair_dark = _mix(hair, (24, 12, 34), 0.62)
    hair_light = _mix(hair, (255, 255, 255), 0.5)
    skin_shadow = _mix(skin, (200, 110, 120), 0.22)
    skin_line = _mix(skin, (110, 50, 50), 0.55)
    iris_dark = _mix(iris, (20, 10, 40), 0.55)
    iris_light = _mix(iris, (255, 255, 255), 0.45)
    pupil = _mix(iris, (10, 5, 20), 0.82)
    lash = (52, 34, 44)
    mouth_col = (150, 52, 64)

    p = _Pen(img, k, angle, scale, dx, dy)
    cx = 48.0

    # ---- hair behind the head (wider than the face)
    cap_cy, cap_r = 44.0, 27.5
    back = _ellipse(cx, cap_cy, cap_r + 1.8, cap_r + 1.0, math.pi, 2 * math.pi, 24)  # left -> over the top -> right
    if back_len > cap_cy:
        n = 7
        x0, x1 = cx + cap_r + 1.8 + (back_len - cap_cy) * 0.12, cx - cap_r - 1.8 - (back_len - cap_cy) * 0.12
        tail = [(cx + cap_r + 1.8, cap_cy)]
        for i in range(n + 1):  # jagged bottom edge, right -> left
            x = x0 + (x1 - x0) * i / n
            tail.append((x, back_len + (0 if i % 2 == 0 else -4.5) + strand_jit[i] * 1.2))
        back = back + tail[1:]
    p.poly(back, fill=hair_shadow, outline=hair_dark, width=0.8)

    if length == "twintails":
        for sgn in (-1, 1):
            top = (cx + sgn * 24, 30)
            tip = (cx + sgn * 34, 96)
            outer = _bez(top, (cx + sgn * 50, 48), tip, 10)
            inner = _bez(tip, (cx + sgn * 27, 60), (cx + sgn * 21, 38), 10)
            p.poly(outer + inner[1:], fill=hair, outline=hair_dark, width=0.8)
            p.line(_bez((cx + sgn * 28, 40), (cx + sgn * 38, 56), (cx + sgn * 33, 86), 8), hair_shadow, 1.0)
            p.ell(cx + sgn * 24, 32, 3.2, 3.2, fill=accent, outline=_mix(accent, (0, 0, 0), 0.4), width=0.6)

    # ---- neck and clothes
    p.poly([(cx - 6.5, 66), (cx + 6.5, 66), (cx + 7, 92), (cx - 7, 92)], fill=skin_shadow)
    p.poly(
        [(cx - 34, 120), (cx - 30, 93), (cx - 8, 87), (cx, 93), (cx + 8, 87), (cx + 30, 93), (cx + 34, 120)],
        fill=clothes,
        outline=_mix(clothes, (0, 0, 0), 0.45),
        width=0.8,
    )
    p.poly([(cx - 8, 87), (cx, 96), (cx + 8, 87), (cx, 91)], fill=_mix(clothes, (255, 255, 255), 0.35))

    # ---- face: round cheeks, tapering chin
    cheek_y = 54.0
    upper = _ellipse(cx, cheek_y, face_rx, 28.0, math.pi, 2 * math.pi, 16)  # left -> top -> right
    lower = []
    for i in range(1, 17):
        t = i / 16
        hw = face_rx * (1 - t**jaw_p) ** 0.62
        lower.append((cx + hw, cheek_y + t * (chin_y - cheek_y)))
    lower_l = [(2 * cx - x, y) for x, y in reversed(lower[:-1])]
    face = upper + lower + lower_l
    p.poly(face, fill=skin, outline=skin_line, width=0.8)

    # ---- bangs outline (needed for the shadow they cast on the forehead)
    tips, notches = [], []
    xl, xr = 21.5, 74.5
    m = n_strands
    for i in range(m):
        t = (i + 0.5) / m
        x = xl + (xr - xl) * t
        edge = abs(t - 0.5) * 2  # 0 centre, 1 temples
        if style == "straight":
            ty = 45.0 + edge * 3.5 + strand_jit[i] * 0.6
            tx = x
        elif style == "spiky":
            ty = 42.5 + edge * 5 + (3.5 if i % 2 else 0) + strand_jit[i] * 1.2
            tx = x + (t - 0.5) * 6
        elif style == "parted":
            ty = 44.0 + edge * 5.0 + strand_jit[i] * 0.8
            tx = x + (8 if x > part_x else -8) * (1 - edge) * 0.6 + (2.5 if x > part_x else -2.5)
        else:  # side_swept
            tt = t if sweep > 0 else 1 - t
            ty = 40.5 + tt * 8.5 + strand_jit[i] * 0.8
            tx = x + sweep * 5.0
        tips.append((tx, ty))
    for i in range(m - 1):
        x = (tips[i][0] + tips[i + 1][0]) / 2
        if style == "straight":
            ny = 40.0 + strand_jit[i + 1]
        elif style == "spiky":
            ny = 34.5 + strand_jit[i + 1] * 1.5
        elif style == "parted":
            ny = 38.0 + strand_jit[i + 1]
        else:
            ny = 36.5 + strand_jit[i + 1]
        notches.append((x, ny))
    if style == "parted":  # the parting: one deep notch at part_x
        j = min(range(len(notches)), key=lambda q: abs(notches[q][0] - part_x))
        notches[j] = (part_x, 29.0)

    left_start = (20.8, 52.0)
    right_end = (75.2, 52.0)
    bottom = [right_end]
    # right temple, tip[m-1], notch[m-2], tip[m-2], ..., notch[0], tip[0], left temple
    seq = [right_end]
    for i in range(m - 1, -1, -1):
        seq.append(("tip", tips[i]))
        if i > 0:
            seq.append(("notch", notches[i - 1]))
    seq.append(left_start)
    prev = right_end
    for item in seq[1:]:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            kind, pt = item
        else:
            kind, pt = "end", item
        if style == "spiky":
            bottom.append(pt)
        elif kind == "tip":  # from a notch (or the temple) down to a tip: bulge then converge
            cp = (prev[0] + (pt[0] - prev[0]) * 0.2, prev[1] + (pt[1] - prev[1]) * 0.8)
            bottom += _bez(prev, cp, pt, 5)[1:]
        else:  # from a tip back up to a notch
            cp = (pt[0] + (prev[0] - pt[0]) * 0.2, pt[1] + (prev[1] - pt[1]) * 0.8)
            bottom += _bez(prev, cp, pt, 5)[1:]
        prev = pt
    cap = _ellipse(cx, cap_cy, cap_r, cap_r, math.pi, 2 * math.pi, 28)  # left (y=44) -> top -> right
    bangs = [left_start] + cap + bottom[:-1]

    # shadow the bangs cast on the forehead
    p.poly([(x, y + 2.2) for x, y in bottom[1:-1]] + [(24.5, 35.0), (71.5, 35.0)], fill=skin_shadow)

    # ---- eyebrows (under the bangs: they peek out between the strands)
    brow_col = _mix(hair_dark, lash, 0.4)
    for sgn in (-1, 1):
        ex = cx + sgn * eye_dx
        by = eye_y - eye_ry - 4.2 - brow_lift
        p.line(_bez((ex - sgn * 3.5, by + 0.6), (ex, by - 1.2), (ex + sgn * 4.0, by + 0.4), 6), brow_col, 0.9)

    # ---- eyes
    for sgn in (-1, 1):
        ex, ey = cx + sgn * eye_dx, eye_y
        rx, ry = eye_rx, eye_ry
        p.ell(ex, ey, rx, ry, fill=(255, 255, 255), n=24)
        ix, iy = ex + look, ey + 0.08 * ry
        irx, iry = rx * 0.8, ry * 0.9
        p.ell(ix, iy, irx, iry, fill=iris_dark, n=24)
        p.ell(ix, iy + iry * 0.22, irx * 0.86, iry * 0.74, fill=iris, n=24)
        p.ell(ix, iy + iry * 0.6, irx * 0.55, iry * 0.24, fill=iris_light, n=16)
        p.ell(ix, iy - iry * 0.05, irx * 0.42, iry * 0.5, fill=pupil, n=16)
        p.ell(ix - irx * 0.38, iy - iry * 0.28, irx * 0.34, irx * 0.34, fill=(255, 255, 255), n=12)
        p.ell(ix + irx * 0.42, iy + iry * 0.36, irx * 0.16, irx * 0.16, fill=(255, 255, 255), n=8)
        # upper lash line: a crescent over the top of the eye with a flick at the outer corner
        a0, a1 = math.pi + 0.32, 2 * math.pi - 0.32
        outer = _ellipse(ex, ey, rx * 1.14, ry * 1.06, a0, a1, 16)
        inner = _ellipse(ex, ey, rx * 1.0, ry * 0.84, a1, a0, 16)
        p.poly(outer + inner, fill=lash)
        oa = a0 if sgn < 0 else a1  # outer corner angle
        ox, oy = ex + rx * 1.05 * math.cos(oa), ey + ry * 0.95 * math.sin(oa)
        p.poly([(ox, oy - 1.0), (ox + sgn * 2.6, oy - 0.6), (ox + sgn * 0.4, oy + 1.6)], fill=lash)
        # lower lash: a short thin stroke near the outer corner
        b = math.pi * 0.78 if sgn < 0 else math.pi * 0.22
        p.line(_ellipse(ex, ey, rx * 1.02, ry * 1.04, b, b - sgn * 0.45, 4), lash, 0.55)

    # ---- nose and mouth
    ny = eye_y + (chin_y - eye_y) * 0.42
    p.line([(cx + 0.3, ny - 0.6), (cx - 0.5, ny + 0.6)], skin_line, 0.7)
    my = chin_y - rng.uniform(7.5, 9.0)
    mx = cx + mouth_dx
    if expression == "smile":
        p.line(_ellipse(mx, my - 1.6, 3.4, 2.0, 0.35, math.pi - 0.35, 8), mouth_col, 0.8)
    elif expression == "open":
        pts = _ellipse(mx, my - 0.8, 3.2, 3.6, 0, math.pi, 12)
        p.poly(pts, fill=(170, 52, 68), outline=mouth_col, width=0.6)
        p.ell(mx, my + 1.6, 1.8, 0.9, fill=(246, 140, 150), n=10)
    elif expression == "line":
        p.line([(mx - 2.2, my), (mx + 2.2, my + 0.1)], mouth_col, 0.75)
    elif expression == "o":
        p.ell(mx, my, 1.5, 1.9, fill=(170, 52, 68), outline=mouth_col, width=0.5, n=12)
    else:  # cat mouth: a small "w"
        p.line(
            _ellipse(mx - 1.5, my - 0.6, 1.5, 1.4, 0.1, math.pi - 0.1, 6)[::-1]
            + _ellipse(mx + 1.5, my - 0.6, 1.5, 1.4, 0.1, math.pi - 0.1, 6)[::-1],
            mouth_col,
            0.7,
        )

    if blush:
        blush_col = _mix(skin, (255, 110, 130), 0.38)
        hatch = _mix(skin, (230, 70, 100), 0.55)
        for sgn in (-1, 1):
            bx, by = cx + sgn * (eye_dx + 1.8), eye_y + eye_ry + 2.6
            p.ell(bx, by, 4.0, 1.7, fill=blush_col, n=16)
            for j in (-1, 0, 1):
                p.line([(bx + j * 1.6 - 0.5, by + 0.8), (bx + j * 1.6 + 0.5, by - 0.8)], hatch, 0.45)

    # ---- front hair: cap + bangs, strand lines, side locks, shine
    p.poly(bangs, fill=hair, outline=hair_dark, width=0.8)
    for nx_, ny_ in notches:
        if style == "parted" and abs(nx_ - part_x) < 0.01:
            p.line([(part_x, 29.5), (part_x + (cx - part_x) * 0.2, 19.0)], hair_dark, 0.7)
            continue
        p.line(_bez((nx_, ny_), (nx_ + (nx_ - cx) * 0.08, ny_ - 6), (nx_ + (cx - nx_) * 0.25, ny_ - 13), 4), hair_shadow, 0.7)
    if has_ring:
        ring_y = rng.uniform(0.68, 0.78)
        rr = cap_r * ring_y
        for j in range(4):  # the "angel ring": a few thin lens-shaped glints
            a = math.pi + 0.6 + j * 0.5
            outer = _ellipse(cx, cap_cy, rr, rr * 0.9, a, a + 0.36, 6)
            inner = [
                (
                    cx + (rr - 2.0 * math.sin(math.pi * q / 6)) * math.cos(a + 0.36 * q / 6),
                    cap_cy + (rr - 2.0 * math.sin(math.pi * q / 6)) * 0.9 * math.sin(a + 0.36 * q / 6),
                )
                for q in range(5, 0, -1)
            ]
            p.poly(outer + inner, fill=hair_light)

    for sgn in (-1, 1):  # side locks beside the cheeks
        top_out = (cx + sgn * 27.6, 40.0)
        top_in = (cx + sgn * 19.0, 46.0)
        tip = (cx + sgn * (21.5 + strand_jit[11] * 0.8), lock_len)
        outer = _bez(top_out, (cx + sgn * 27.5, (40 + lock_len) / 2 + 4), tip, 8)
        inner = _bez(tip, (cx + sgn * 17.0, (46 + lock_len) / 2), top_in, 8)
        p.poly(outer + inner[1:] + [(cx + sgn * 22, 36)], fill=hair, outline=hair_dark, width=0.8)
        p.line(_bez((cx + sgn * 23.5, 47), (cx + sgn * 23.0, (46 + lock_len) / 2 + 2), tip, 6)[:-2], hair_shadow, 0.6)

    if has_accessory:  # a hair clip or bow on one side of the bangs
        ax, ay = cx + acc_side * 16, 35.0
        dark = _mix(accent, (0, 0, 0), 0.45)
        p.poly(
            [(ax - 3.6, ay - 2.4), (ax + 3.6, ay + 2.4), (ax + 3.6, ay - 2.4), (ax - 3.6, ay + 2.4)],
            fill=accent,
            outline=dark,
            width=0.5,
        )
        p.ell(ax, ay, 1.2, 1.2, fill=dark, n=8)

    out = img.resize((size, size), Image.LANCZOS)
    labels = {
        "hair_color": hair_name,
        "eye_color": eye_name,
        "hair_style": style,
        "expression": expression,
        "blush": blush,
        "skin_tone": skin_name,
        "background": bg_label,
    }
    return out, labels


# ----------------------------------------------------------------------------- the set on disk
def _file_name(index: int) -> str:
    return f"images/{index:05d}.png"


def _render_and_save(args: tuple[str, int, int]) -> tuple[int, dict]:
    out_dir, seed, index = args
    img, labels = render_face(seed, index)
    # Written in place: the folder only counts as complete once meta.json is written, last.
    img.save(os.path.join(out_dir, _file_name(index)), format="PNG", compress_level=1)
    return index, labels


def _pool_context():
    # Workers only draw with Pillow, so "fork" is safe and avoids re-importing the caller's
    # __main__ (which "spawn"/"forkserver" do). Fall back to the platform default elsewhere.
    methods = mp.get_all_start_methods()
    return mp.get_context("fork" if "fork" in methods else None)


def write_synthetic(
    out_dir: str | Path,
    n: int = DEFAULT_N,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> Path:
    """Write n faces as out_dir/images/{index:05d}.png, out_dir/labels.csv and out_dir/meta.json.

    meta.json ({"n", "seed", "size", "version"}) is removed first and written last, so a
    folder with a meta.json is complete. `progress(done, total)` is called now and then
    (and at the end). `workers`: None picks os.cpu_count() processes for large n (and one
    for small n); 1 renders in this process. Output is identical whatever the worker count.
    """
    out = Path(out_dir)
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    meta_path = out / "meta.json"
    meta_path.unlink(missing_ok=True)
    n, seed = int(n), int(seed)

    # Drop stale images from an earlier, larger set so images/ holds exactly this set.
    pat = re.compile(r"^(\d{5,})\.png$")
    for f in images.iterdir():
        mt = pat.match(f.name)
        if mt and int(mt.group(1)) >= n:
            f.unlink(missing_ok=True)

    if workers is None:
        workers = (os.cpu_count() or 1) if n >= 256 else 1
    workers = max(1, min(int(workers), max(1, n)))
    if mp.current_process().daemon:  # daemonic processes may not start a Pool of their own
        workers = 1

    step = max(1, n // 200)
    rows: list[dict | None] = [None] * n
    jobs = ((str(out), seed, i) for i in range(n))

    def _note(done: int) -> None:
        if progress is not None and (done % step == 0 or done == n):
            progress(done, n)

    if workers == 1:
        for done, job in enumerate(jobs, 1):
            i, labels = _render_and_save(job)
            rows[i] = labels
            _note(done)
    else:
        chunk = max(1, min(64, n // (workers * 8) or 1))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork() in a threaded process: workers only use Pillow
            pool = _pool_context().Pool(workers)
        try:
            for done, (i, labels) in enumerate(pool.imap_unordered(_render_and_save, jobs, chunksize=chunk), 1):
                rows[i] = labels
                _note(done)
            pool.close()
        except BaseException:
            pool.terminate()
            raise
        finally:
            pool.join()
    if n == 0 and progress is not None:
        progress(0, 0)

    tmp = out / "labels.csv.tmp"
    with open(tmp, "w", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=list(CSV_FIELDS))
        wr.writeheader()
        for i, labels in enumerate(rows):
            assert labels is not None
            wr.writerow({"index": i, "file": _file_name(i), **labels})
    os.replace(tmp, out / "labels.csv")

    meta = {"n": n, "seed": seed, "size": SYNTH_SIZE, "version": VERSION}
    tmp = out / "meta.json.tmp"
    tmp.write_text(json.dumps(meta, indent=1) + "\n")
    os.replace(tmp, meta_path)
    return out


def is_complete(out_dir: str | Path, n: int = DEFAULT_N, seed: int = 0) -> bool:
    """True when out_dir holds a finished set of this n and seed (at the current size and version)."""
    out = Path(out_dir)
    try:
        meta = json.loads((out / "meta.json").read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(meta, dict):
        return False
    ok = (
        meta.get("n") == int(n)
        and meta.get("seed") == int(seed)
        and meta.get("size") == SYNTH_SIZE
        and meta.get("version") == VERSION
    )
    return bool(ok and (out / "labels.csv").is_file() and (n == 0 or (out / _file_name(int(n) - 1)).is_file()))


def grid(n: int = 64, seed: int = 0, cols: int = 8) -> Image.Image:
    """A contact sheet of faces 0..n-1 of set `seed`, `cols` per row, 96 px each, no gaps."""
    n, cols = int(n), max(1, int(cols))
    rows = max(1, math.ceil(n / cols))
    sheet = Image.new("RGB", (cols * SYNTH_SIZE, rows * SYNTH_SIZE), (255, 255, 255))
    for i in range(n):
        img, _ = render_face(seed, i)
        sheet.paste(img, ((i % cols) * SYNTH_SIZE, (i // cols) * SYNTH_SIZE))
    return sheet
