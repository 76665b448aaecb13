"""Drawing one synthetic anime face with Pillow: ``render_face(seed, index)``.

An oval face with a small chin, big vertically-oval eyes (iris darker at the top, pupil, white
highlights, a thick upper lash line), eyebrows, a tiny nose and mouth, optional blush, hair in
one of the 12 common anime hair colours with bangs over the forehead, side locks beside the
cheeks and a hair mass behind the head, over a plain or gently graded pastel background. Pose
(tilt), size and position vary a little from face to face.

Every face is a pure function of ``(seed, index)``: the random stream is
``random.Random("synth-v1:{seed}:{index}")`` (string seeds are hashed with SHA-512 by
:mod:`random`, never with Python's salted ``hash()``). Every trait is drawn first, in a fixed
order (``_choose``); then each feature is drawn by its own function, back to front.

Faces are drawn at ``SUPERSAMPLE``× the output size and downsampled with LANCZOS, which
antialiases the flat-colour shapes. Only Pillow and the standard library.
"""

from __future__ import annotations

import math
import random
from functools import lru_cache
from typing import Iterable

from PIL import Image, ImageDraw

RGB = tuple[int, int, int]

SYNTH_SIZE = 96
VERSION = 1      # of the drawing: part of every face's random stream and of the set's meta.json
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
CX = 48.0                      # the face's vertical axis (design space)
CAP_CY, CAP_R = 44.0, 27.5     # the skull: the circle the hair cap follows
LASH = (52, 34, 44)
MOUTH = (150, 52, 64)


def _rng(seed: int, index: int) -> random.Random:
    return random.Random(f"synth-v{VERSION}:{int(seed)}:{int(index)}")


class _Traits:
    """Every random choice of one face and the colours derived from them, filled by ``_choose``.
    Two more numbers are drawn while drawing: the mouth's height (``_draw_mouth``) and then,
    with a ring, its radius (``_draw_angel_ring``)."""

    def labels(self) -> dict:
        return {"hair_color": self.hair_name, "eye_color": self.eye_name, "hair_style": self.style,
                "expression": self.expression, "blush": self.blush, "skin_tone": self.skin_name,
                "background": self.bg_label}


def _choose(rng: random.Random, side: int) -> tuple[Image.Image, _Traits]:
    """The background and every trait of a face, drawn from ``rng`` in a fixed order (changing
    the order changes every face of every set)."""
    f = _Traits()
    img, f.bg_label = _background(rng, side)
    f.hair_name = rng.choice(list(HAIR_COLORS))
    f.eye_name = rng.choice(list(EYE_COLORS))
    f.skin_name = rng.choices(list(SKIN_TONES), weights=_SKIN_WEIGHTS)[0]
    f.style = rng.choice(HAIR_STYLES)
    f.length = rng.choice(HAIR_LENGTHS)
    f.expression = rng.choice(EXPRESSIONS)
    f.blush = rng.random() < 0.45
    f.hair = _jitter(rng, HAIR_COLORS[f.hair_name], 6)
    f.iris = _jitter(rng, EYE_COLORS[f.eye_name], 6)
    f.skin = SKIN_TONES[f.skin_name]
    f.clothes = rng.choice(_CLOTHES)
    f.accent = rng.choice(_ACCENTS)
    f.angle = rng.uniform(-8.0, 8.0)                     # pose: tilt, scale, offset
    f.scale = rng.uniform(0.92, 1.05)
    f.dx, f.dy = rng.uniform(-3.0, 3.0), rng.uniform(-2.5, 2.5)
    f.face_rx = rng.uniform(19.5, 21.5)
    f.chin_y = rng.uniform(78.0, 81.5)
    f.jaw_p = rng.uniform(1.6, 2.4)
    f.eye_y = rng.uniform(54.0, 56.5)
    f.eye_dx = rng.uniform(9.8, 11.2)
    f.eye_rx = rng.uniform(5.3, 6.3)
    f.eye_ry = f.eye_rx * rng.uniform(1.18, 1.38)
    f.brow_lift = rng.uniform(-0.8, 1.2)
    f.look = rng.uniform(-0.6, 0.6)  # gaze: iris shift in x
    f.mouth_dx = rng.uniform(-0.6, 0.6)
    f.part_x = 48 + rng.uniform(-5, 5)
    f.sweep = rng.choice((-1, 1))
    f.n_strands = rng.randint(5, 8)
    f.strand_jit = [rng.uniform(-1.0, 1.0) for _ in range(12)]
    # every length's value is drawn (a fixed number of draws), then the one of this length kept
    f.lock_len = {
        "short": rng.uniform(64, 70),
        "bob": rng.uniform(74, 80),
        "long": rng.uniform(84, 94),
        "twintails": rng.uniform(70, 78),
    }[f.length]
    f.back_len = {"short": rng.uniform(60, 66), "bob": rng.uniform(76, 82), "long": 104.0,
                  "twintails": rng.uniform(60, 66)}[f.length]
    f.has_ring = rng.random() < 0.8
    f.has_accessory = rng.random() < 0.3
    f.acc_side = rng.choice((-1, 1))
    # derived colours (no draws)
    f.hair_shadow = _mix(f.hair, (40, 24, 70), 0.32)
    f.hair_dark = _mix(f.hair, (24, 12, 34), 0.62)
    f.hair_light = _mix(f.hair, (255, 255, 255), 0.5)
    f.skin_shadow = _mix(f.skin, (200, 110, 120), 0.22)
    f.skin_line = _mix(f.skin, (110, 50, 50), 0.55)
    f.iris_dark = _mix(f.iris, (20, 10, 40), 0.55)
    f.iris_light = _mix(f.iris, (255, 255, 255), 0.45)
    f.pupil = _mix(f.iris, (10, 5, 20), 0.82)
    return img, f


def _draw_back_hair(p: _Pen, f: _Traits) -> None:
    """The hair mass behind the head (wider than the face), with a jagged bottom edge."""
    cx = CX
    back = _ellipse(cx, CAP_CY, CAP_R + 1.8, CAP_R + 1.0, math.pi, 2 * math.pi, 24)  # left -> over the top -> right
    if f.back_len > CAP_CY:
        n = 7
        x0, x1 = cx + CAP_R + 1.8 + (f.back_len - CAP_CY) * 0.12, cx - CAP_R - 1.8 - (f.back_len - CAP_CY) * 0.12
        tail = [(cx + CAP_R + 1.8, CAP_CY)]
        for i in range(n + 1):  # jagged bottom edge, right -> left
            x = x0 + (x1 - x0) * i / n
            tail.append((x, f.back_len + (0 if i % 2 == 0 else -4.5) + f.strand_jit[i] * 1.2))
        back = back + tail[1:]
    p.poly(back, fill=f.hair_shadow, outline=f.hair_dark, width=0.8)


def _draw_twintails(p: _Pen, f: _Traits) -> None:
    cx = CX
    for sgn in (-1, 1):
        top = (cx + sgn * 24, 30)
        tip = (cx + sgn * 34, 96)
        outer = _bez(top, (cx + sgn * 50, 48), tip, 10)
        inner = _bez(tip, (cx + sgn * 27, 60), (cx + sgn * 21, 38), 10)
        p.poly(outer + inner[1:], fill=f.hair, outline=f.hair_dark, width=0.8)
        p.line(_bez((cx + sgn * 28, 40), (cx + sgn * 38, 56), (cx + sgn * 33, 86), 8), f.hair_shadow, 1.0)
        p.ell(cx + sgn * 24, 32, 3.2, 3.2, fill=f.accent, outline=_mix(f.accent, (0, 0, 0), 0.4), width=0.6)


def _draw_neck_and_clothes(p: _Pen, f: _Traits) -> None:
    cx = CX
    p.poly([(cx - 6.5, 66), (cx + 6.5, 66), (cx + 7, 92), (cx - 7, 92)], fill=f.skin_shadow)
    p.poly(
        [(cx - 34, 120), (cx - 30, 93), (cx - 8, 87), (cx, 93), (cx + 8, 87), (cx + 30, 93), (cx + 34, 120)],
        fill=f.clothes,
        outline=_mix(f.clothes, (0, 0, 0), 0.45),
        width=0.8,
    )
    p.poly([(cx - 8, 87), (cx, 96), (cx + 8, 87), (cx, 91)], fill=_mix(f.clothes, (255, 255, 255), 0.35))


def _draw_face(p: _Pen, f: _Traits) -> None:
    """The face: round cheeks, a tapering chin."""
    cx = CX
    cheek_y = 54.0
    upper = _ellipse(cx, cheek_y, f.face_rx, 28.0, math.pi, 2 * math.pi, 16)  # left -> top -> right
    lower = []
    for i in range(1, 17):
        t = i / 16
        hw = f.face_rx * (1 - t**f.jaw_p) ** 0.62
        lower.append((cx + hw, cheek_y + t * (f.chin_y - cheek_y)))
    lower_l = [(2 * cx - x, y) for x, y in reversed(lower[:-1])]
    p.poly(upper + lower + lower_l, fill=f.skin, outline=f.skin_line, width=0.8)


def _bang_tips(f: _Traits) -> list[tuple[float, float]]:
    """The tips of the bangs' strands, left to right, shaped by the hair style."""
    tips = []
    xl, xr = 21.5, 74.5
    m = f.n_strands
    for i in range(m):
        t = (i + 0.5) / m
        x = xl + (xr - xl) * t
        edge = abs(t - 0.5) * 2  # 0 centre, 1 temples
        if f.style == "straight":
            ty = 45.0 + edge * 3.5 + f.strand_jit[i] * 0.6
            tx = x
        elif f.style == "spiky":
            ty = 42.5 + edge * 5 + (3.5 if i % 2 else 0) + f.strand_jit[i] * 1.2
            tx = x + (t - 0.5) * 6
        elif f.style == "parted":
            ty = 44.0 + edge * 5.0 + f.strand_jit[i] * 0.8
            tx = x + (8 if x > f.part_x else -8) * (1 - edge) * 0.6 + (2.5 if x > f.part_x else -2.5)
        else:  # side_swept
            tt = t if f.sweep > 0 else 1 - t
            ty = 40.5 + tt * 8.5 + f.strand_jit[i] * 0.8
            tx = x + f.sweep * 5.0
        tips.append((tx, ty))
    return tips


def _bang_notches(f: _Traits, tips: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The notches between neighbouring tips (one deep notch at the parting for "parted")."""
    notches = []
    for i in range(f.n_strands - 1):
        x = (tips[i][0] + tips[i + 1][0]) / 2
        if f.style == "straight":
            ny = 40.0 + f.strand_jit[i + 1]
        elif f.style == "spiky":
            ny = 34.5 + f.strand_jit[i + 1] * 1.5
        elif f.style == "parted":
            ny = 38.0 + f.strand_jit[i + 1]
        else:
            ny = 36.5 + f.strand_jit[i + 1]
        notches.append((x, ny))
    if f.style == "parted":  # the parting: one deep notch at part_x
        j = min(range(len(notches)), key=lambda q: abs(notches[q][0] - f.part_x))
        notches[j] = (f.part_x, 29.0)
    return notches


def _bangs(f: _Traits) -> tuple[list, list, list]:
    """-> (the outline of cap + bangs, their lower edge right to left, the notches)."""
    tips = _bang_tips(f)
    notches = _bang_notches(f, tips)
    m = f.n_strands
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
        if f.style == "spiky":
            bottom.append(pt)
        elif kind == "tip":  # from a notch (or the temple) down to a tip: bulge then converge
            cp = (prev[0] + (pt[0] - prev[0]) * 0.2, prev[1] + (pt[1] - prev[1]) * 0.8)
            bottom += _bez(prev, cp, pt, 5)[1:]
        else:  # from a tip back up to a notch
            cp = (pt[0] + (prev[0] - pt[0]) * 0.2, pt[1] + (prev[1] - pt[1]) * 0.8)
            bottom += _bez(prev, cp, pt, 5)[1:]
        prev = pt
    cap = _ellipse(CX, CAP_CY, CAP_R, CAP_R, math.pi, 2 * math.pi, 28)  # left (y=44) -> top -> right
    return [left_start] + cap + bottom[:-1], bottom, notches


def _draw_bangs_shadow(p: _Pen, f: _Traits, bottom: list) -> None:
    """The shadow the bangs cast on the forehead."""
    p.poly([(x, y + 2.2) for x, y in bottom[1:-1]] + [(24.5, 35.0), (71.5, 35.0)], fill=f.skin_shadow)


def _draw_brows(p: _Pen, f: _Traits) -> None:
    """Eyebrows (drawn under the bangs: they peek out between the strands)."""
    brow_col = _mix(f.hair_dark, LASH, 0.4)
    for sgn in (-1, 1):
        ex = CX + sgn * f.eye_dx
        by = f.eye_y - f.eye_ry - 4.2 - f.brow_lift
        p.line(_bez((ex - sgn * 3.5, by + 0.6), (ex, by - 1.2), (ex + sgn * 4.0, by + 0.4), 6), brow_col, 0.9)


def _draw_eye(p: _Pen, f: _Traits, sgn: int) -> None:
    """One eye (sgn -1 left, 1 right): white, iris in three tones, pupil, highlights, lashes."""
    ex, ey = CX + sgn * f.eye_dx, f.eye_y
    rx, ry = f.eye_rx, f.eye_ry
    p.ell(ex, ey, rx, ry, fill=(255, 255, 255), n=24)
    ix, iy = ex + f.look, ey + 0.08 * ry
    irx, iry = rx * 0.8, ry * 0.9
    p.ell(ix, iy, irx, iry, fill=f.iris_dark, n=24)
    p.ell(ix, iy + iry * 0.22, irx * 0.86, iry * 0.74, fill=f.iris, n=24)
    p.ell(ix, iy + iry * 0.6, irx * 0.55, iry * 0.24, fill=f.iris_light, n=16)
    p.ell(ix, iy - iry * 0.05, irx * 0.42, iry * 0.5, fill=f.pupil, n=16)
    p.ell(ix - irx * 0.38, iy - iry * 0.28, irx * 0.34, irx * 0.34, fill=(255, 255, 255), n=12)
    p.ell(ix + irx * 0.42, iy + iry * 0.36, irx * 0.16, irx * 0.16, fill=(255, 255, 255), n=8)
    # upper lash line: a crescent over the top of the eye with a flick at the outer corner
    a0, a1 = math.pi + 0.32, 2 * math.pi - 0.32
    outer = _ellipse(ex, ey, rx * 1.14, ry * 1.06, a0, a1, 16)
    inner = _ellipse(ex, ey, rx * 1.0, ry * 0.84, a1, a0, 16)
    p.poly(outer + inner, fill=LASH)
    oa = a0 if sgn < 0 else a1  # outer corner angle
    ox, oy = ex + rx * 1.05 * math.cos(oa), ey + ry * 0.95 * math.sin(oa)
    p.poly([(ox, oy - 1.0), (ox + sgn * 2.6, oy - 0.6), (ox + sgn * 0.4, oy + 1.6)], fill=LASH)
    # lower lash: a short thin stroke near the outer corner
    b = math.pi * 0.78 if sgn < 0 else math.pi * 0.22
    p.line(_ellipse(ex, ey, rx * 1.02, ry * 1.04, b, b - sgn * 0.45, 4), LASH, 0.55)


def _draw_nose(p: _Pen, f: _Traits) -> None:
    ny = f.eye_y + (f.chin_y - f.eye_y) * 0.42
    p.line([(CX + 0.3, ny - 0.6), (CX - 0.5, ny + 0.6)], f.skin_line, 0.7)


def _draw_mouth(p: _Pen, f: _Traits, rng: random.Random) -> None:
    """The mouth of the expression; its height is drawn from ``rng`` here."""
    my = f.chin_y - rng.uniform(7.5, 9.0)
    mx = CX + f.mouth_dx
    if f.expression == "smile":
        p.line(_ellipse(mx, my - 1.6, 3.4, 2.0, 0.35, math.pi - 0.35, 8), MOUTH, 0.8)
    elif f.expression == "open":
        pts = _ellipse(mx, my - 0.8, 3.2, 3.6, 0, math.pi, 12)
        p.poly(pts, fill=(170, 52, 68), outline=MOUTH, width=0.6)
        p.ell(mx, my + 1.6, 1.8, 0.9, fill=(246, 140, 150), n=10)
    elif f.expression == "line":
        p.line([(mx - 2.2, my), (mx + 2.2, my + 0.1)], MOUTH, 0.75)
    elif f.expression == "o":
        p.ell(mx, my, 1.5, 1.9, fill=(170, 52, 68), outline=MOUTH, width=0.5, n=12)
    else:  # cat mouth: a small "w"
        p.line(
            _ellipse(mx - 1.5, my - 0.6, 1.5, 1.4, 0.1, math.pi - 0.1, 6)[::-1]
            + _ellipse(mx + 1.5, my - 0.6, 1.5, 1.4, 0.1, math.pi - 0.1, 6)[::-1],
            MOUTH,
            0.7,
        )


def _draw_blush(p: _Pen, f: _Traits) -> None:
    """Blush under the eyes: a soft oval with three hatch strokes on each cheek."""
    blush_col = _mix(f.skin, (255, 110, 130), 0.38)
    hatch = _mix(f.skin, (230, 70, 100), 0.55)
    for sgn in (-1, 1):
        bx, by = CX + sgn * (f.eye_dx + 1.8), f.eye_y + f.eye_ry + 2.6
        p.ell(bx, by, 4.0, 1.7, fill=blush_col, n=16)
        for j in (-1, 0, 1):
            p.line([(bx + j * 1.6 - 0.5, by + 0.8), (bx + j * 1.6 + 0.5, by - 0.8)], hatch, 0.45)


def _draw_front_hair(p: _Pen, f: _Traits, bangs: list, notches: list) -> None:
    """The hair cap and bangs, with a strand line up from each notch (the parting's own)."""
    cx = CX
    p.poly(bangs, fill=f.hair, outline=f.hair_dark, width=0.8)
    for nx_, ny_ in notches:
        if f.style == "parted" and abs(nx_ - f.part_x) < 0.01:
            p.line([(f.part_x, 29.5), (f.part_x + (cx - f.part_x) * 0.2, 19.0)], f.hair_dark, 0.7)
            continue
        p.line(_bez((nx_, ny_), (nx_ + (nx_ - cx) * 0.08, ny_ - 6), (nx_ + (cx - nx_) * 0.25, ny_ - 13), 4), f.hair_shadow, 0.7)


def _draw_angel_ring(p: _Pen, f: _Traits, rng: random.Random) -> None:
    """The "angel ring": a few thin lens-shaped glints on the hair; its radius is drawn here."""
    cx = CX
    ring_y = rng.uniform(0.68, 0.78)
    rr = CAP_R * ring_y
    for j in range(4):
        a = math.pi + 0.6 + j * 0.5
        outer = _ellipse(cx, CAP_CY, rr, rr * 0.9, a, a + 0.36, 6)
        inner = [
            (
                cx + (rr - 2.0 * math.sin(math.pi * q / 6)) * math.cos(a + 0.36 * q / 6),
                CAP_CY + (rr - 2.0 * math.sin(math.pi * q / 6)) * 0.9 * math.sin(a + 0.36 * q / 6),
            )
            for q in range(5, 0, -1)
        ]
        p.poly(outer + inner, fill=f.hair_light)


def _draw_side_locks(p: _Pen, f: _Traits) -> None:
    """The locks beside the cheeks, down to the hair length."""
    cx, lock_len = CX, f.lock_len
    for sgn in (-1, 1):
        top_out = (cx + sgn * 27.6, 40.0)
        top_in = (cx + sgn * 19.0, 46.0)
        tip = (cx + sgn * (21.5 + f.strand_jit[11] * 0.8), lock_len)
        outer = _bez(top_out, (cx + sgn * 27.5, (40 + lock_len) / 2 + 4), tip, 8)
        inner = _bez(tip, (cx + sgn * 17.0, (46 + lock_len) / 2), top_in, 8)
        p.poly(outer + inner[1:] + [(cx + sgn * 22, 36)], fill=f.hair, outline=f.hair_dark, width=0.8)
        p.line(_bez((cx + sgn * 23.5, 47), (cx + sgn * 23.0, (46 + lock_len) / 2 + 2), tip, 6)[:-2], f.hair_shadow, 0.6)


def _draw_accessory(p: _Pen, f: _Traits) -> None:
    """A hair clip or bow on one side of the bangs."""
    ax, ay = CX + f.acc_side * 16, 35.0
    dark = _mix(f.accent, (0, 0, 0), 0.45)
    p.poly(
        [(ax - 3.6, ay - 2.4), (ax + 3.6, ay + 2.4), (ax + 3.6, ay - 2.4), (ax - 3.6, ay + 2.4)],
        fill=f.accent,
        outline=dark,
        width=0.5,
    )
    p.ell(ax, ay, 1.2, 1.2, fill=dark, n=8)


def render_face(seed: int, index: int, size: int = SYNTH_SIZE) -> tuple[Image.Image, dict]:
    """RGB image (size x size) of face `index` of set `seed`, and its labels.

    Labels: hair_color, eye_color (keys of HAIR_COLORS / EYE_COLORS), hair_style (the bangs:
    one of HAIR_STYLES), expression (one of EXPRESSIONS), blush (bool), skin_tone (a key of
    SKIN_TONES), background (a key of BACKGROUNDS, with "_gradient" appended when graded).
    The features are drawn back to front; the order is part of the picture.
    """
    rng = _rng(seed, index)
    side = int(size) * SUPERSAMPLE
    img, f = _choose(rng, side)
    p = _Pen(img, side / 96.0, f.angle, f.scale, f.dx, f.dy)
    _draw_back_hair(p, f)
    if f.length == "twintails":
        _draw_twintails(p, f)
    _draw_neck_and_clothes(p, f)
    _draw_face(p, f)
    bangs, bottom, notches = _bangs(f)
    _draw_bangs_shadow(p, f, bottom)
    _draw_brows(p, f)
    for sgn in (-1, 1):
        _draw_eye(p, f, sgn)
    _draw_nose(p, f)
    _draw_mouth(p, f, rng)
    if f.blush:
        _draw_blush(p, f)
    _draw_front_hair(p, f, bangs, notches)
    if f.has_ring:
        _draw_angel_ring(p, f, rng)
    _draw_side_locks(p, f)
    if f.has_accessory:
        _draw_accessory(p, f)
    return img.resize((size, size), Image.LANCZOS), f.labels()
