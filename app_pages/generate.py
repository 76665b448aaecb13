"""Generate: faces from any checkpoint, reproducibly by (seed, index). Click a face to pick it;
steer it along the latent directions the generator learned; see what truncation does; walk to
another face; project your own image into the generator; check whether a face is a copy of a
training face."""
from __future__ import annotations

import io
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st
import torch

from animegan import commands, generate, images, paths, uploads
from animegan.checkpoint import CheckpointError, LoadedGenerator, no_discriminator_reason
from animegan.data import DataError
from animegan.explore import directions, memorisation
from animegan.explore.invert import invert, load_face, side_by_side
from animegan.metrics import evaluation
from app_pages import after_paint, shared

MAX_SEED = generate.MAX_SEED
PAD = 2                                   # pixels between faces in a grid (images.to_grid's default)
MAX_DIRECTIONS = directions.DEFAULT_K     # sliders offered (computed once per checkpoint and method)
FACE_TYPES = ["png", "jpg", "jpeg", "webp", "bmp", "gif"]
METHOD_SHORT = {"sefa": "SeFa", "ganspace": "GANSpace"}
BELOW_THE_GRID = "gen_below"              # after_paint's key for everything under the grid


# =========================================================================== callbacks


def _label_of(path: Path) -> str | None:
    want = Path(path).resolve()
    for label, p in shared.checkpoint_choices().items():
        if Path(p).resolve() == want:
            return label
    return None


def _open(path: str | Path) -> None:
    """Validate a checkpoint the user brought and select it (runs as a widget callback)."""
    try:
        shared.add_user_checkpoint(path)
    except CheckpointError as e:
        st.session_state["gen_open_error"] = str(e)
        return
    except OSError as e:
        st.session_state["gen_open_error"] = f"could not read {path}: {e}"
        return
    st.session_state.pop("gen_open_error", None)
    label = _label_of(Path(path).expanduser())
    if label:
        st.session_state["gen_ckpt"] = label


def _open_typed() -> None:
    typed = str(st.session_state.get("gen_open_path") or "").strip()
    if not typed:
        st.session_state["gen_open_error"] = "type the path of a .pt checkpoint first"
        return
    _open(typed)


def _open_uploaded() -> None:
    up = st.session_state.get("gen_upload")
    if up is None:
        return
    try:
        dest = uploads.save_checkpoint_upload(up.name, up.getvalue())
    except OSError as e:
        st.session_state["gen_open_error"] = f"could not save the upload: {e}"
        return
    _open(dest)


def _seed_changed() -> None:
    """The interpolation's end seed follows the main seed (the next one)."""
    st.session_state["gen_seed_b"] = (int(st.session_state["gen_seed"]) + 1) % (MAX_SEED + 1)


def _new_seed() -> None:
    st.session_state["gen_seed"] = secrets.randbelow(MAX_SEED + 1)
    _seed_changed()


def _picked_in_grid() -> None:
    """A click on the grid: the clicked face becomes the picked one."""
    from app_pages.face_grid import picked_face
    i = picked_face("gen_grid")
    if i is not None:
        st.session_state["gen_pick"] = i
        st.session_state["gen_source"] = "grid"


def _reset_sliders() -> None:
    for i in range(MAX_DIRECTIONS):
        st.session_state[f"gen_dir_{i}"] = 0.0


def _save_name(ckpt_hash: str, method: str, i: int, key: str) -> None:
    directions.save_name(ckpt_hash, method, i, st.session_state.get(key, ""))


def _pin_end(z: torch.Tensor, label: str) -> None:
    st.session_state["gen_pinned"] = {"z": z.clone(), "label": label}
    st.session_state["gen_interp_to"] = "the pinned face"


# =========================================================================== cached work


@st.cache_resource(max_entries=16, show_spinner="Finding latent directions...")
def _directions(path: str, mtime: float, method: str) -> directions.Directions:
    return directions.find(shared.get_generator(path).G, method, MAX_DIRECTIONS)


@st.cache_data(max_entries=32, show_spinner=False)
def _checkpoint_hash(path: str, mtime: float, size: int) -> str:
    return directions.checkpoint_hash(path)


@st.cache_resource(max_entries=4, show_spinner="Preparing the training data (decoded once, then cached)...")
def _training_data(source: str, size: int, val: int, test: int, split_seed: int, _cfg) -> memorisation.PreparedData:
    return evaluation.checkpoint_data(_cfg, source)


def _z_bytes(z: torch.Tensor) -> bytes:
    return z.detach().to(torch.float32).contiguous().numpy().tobytes()


def _z_of(b: bytes) -> torch.Tensor:
    return torch.from_numpy(np.frombuffer(b, dtype=np.float32).copy())


# Every picture below is a function of its arguments alone (checkpoint file version, seed, latents,
# psi...): cached across reruns and sessions, so a new visit or an unchanged section draws nothing again.
@st.cache_data(max_entries=32, show_spinner=False)
def _grid(path: str, mtime: float, seed: int, n: int, psi: float, k: int, cols: int) -> dict:
    generator = shared.get_generator(path)
    t0 = time.perf_counter()
    res = generate.generate(generator.G, seed, n, truncation=psi, D=generator.D if k > 1 else None, rerank=k)
    dt = time.perf_counter() - t0
    return {"res": res, "dt": dt, "png": images.png_bytes(images.to_grid(res.images, cols=cols, padding=PAD))}


@st.cache_data(max_entries=64, show_spinner=False)
def _face(path: str, mtime: float, z: bytes, psi: float) -> torch.Tensor:
    return generate.render(shared.get_generator(path).G, _z_of(z)[None], truncation=psi)[0]


@st.cache_data(max_entries=64, show_spinner=False)
def _drawn_alone_is_identical(path: str, mtime: float, seed: int, idx: int, psi: float, in_grid: bytes) -> bool:
    """Face (seed, idx) drawn alone has exactly the pixels it has in the grid."""
    alone = generate.generate(shared.get_generator(path).G, seed, 1, start=idx, truncation=psi).images[0]
    return alone.numpy().tobytes() == in_grid


@st.cache_data(max_entries=256, show_spinner=False)
def _direction_strip_png(path: str, mtime: float, method: str, i: int, z: bytes, others: bytes, psi: float) -> bytes:
    G = shared.get_generator(path).G
    row = directions.strip(G, _z_of(z), _directions(path, mtime, method).vectors[i], truncation=psi, base=_z_of(others))
    return _png(row, 2)


@st.cache_data(max_entries=64, show_spinner=False)
def _truncation_strip_png(path: str, mtime: float, z: bytes) -> bytes:
    return _png(generate.truncation_strip(shared.get_generator(path).G, _z_of(z)), 2)


@st.cache_data(max_entries=16, show_spinner=False)
def _interpolation(path: str, mtime: float, z_start: bytes, z_end: bytes, steps: int, mode: str, psi: float) -> dict:
    G = shared.get_generator(path).G
    frames = generate.render(G, generate.interpolation_latents(_z_of(z_start), _z_of(z_end), steps, mode), truncation=psi)
    gif = io.BytesIO()
    images.to_gif(frames, gif, fps=10, upscale=4)
    return {"frames": frames, "gif": gif.getvalue()}


def _png(img, scale: int = 1, smooth: bool = False) -> bytes:
    """A PIL image, one uint8 face (3, S, S) or a row of faces (N, 3, S, S) as PNG bytes, enlarged."""
    if isinstance(img, torch.Tensor):
        img = images.to_pil(img) if img.dim() == 3 else images.to_grid(img, cols=len(img))
    return images.png_bytes(images.upscale(img, scale, smooth=smooth))


def code_span(text: str) -> str:
    """`text` as Markdown inline code, which wraps and is drawn without Streamlit's syntax
    highlighter (st.code loads a 1.5 MB script: a third of a second of the page's first paint)."""
    fence = "``" if "`" in text else "`"
    return f"{fence} {text} {fence}" if fence == "``" else f"`{text}`"


def _show(png: bytes, caption: str) -> None:
    """PNG bytes as drawn (not re-encoded as JPEG), at their own size: shrunk where the column is
    narrower, never stretched."""
    st.image(png, caption=caption, output_format="PNG", width="content")


# =========================================================================== sections


def checkpoint_section() -> tuple[Path, LoadedGenerator, float]:
    choices = shared.checkpoint_choices()
    labels = list(choices)
    if st.session_state.get("gen_ckpt") not in labels:
        st.session_state.pop("gen_ckpt", None)
    with st.expander("Open your own checkpoint", expanded=not labels):
        o1, o2 = st.columns(2)
        with o1:
            st.text_input("Path to a .pt file on this machine", key="gen_open_path",
                          placeholder="~/animegan-runs/my-run/checkpoints/best.pt")
            st.button("Open", key="gen_open_btn", on_click=_open_typed)
        with o2:
            st.file_uploader("…or upload one", type=["pt"], key="gen_upload", on_change=_open_uploaded)
        st.caption("Exported generators (`python -m animegan export`) and training checkpoints both work. Files are "
                   "loaded with `weights_only=True`: a file carrying code is refused, never run.")
        if st.session_state.get("gen_open_error"):
            shared.show_error(CheckpointError(st.session_state["gen_open_error"]))
    if not labels:
        st.info(f"No checkpoint yet: none shipped in `{paths.SHIPPED_CHECKPOINTS}` and no run has saved one. "
                "Train a run on the **Train** page (a few epochs of `classic-dcgan` on the synthetic set run on a CPU), "
                "or open a checkpoint above.")
        st.stop()
    label = st.selectbox("Checkpoint", labels, key="gen_ckpt",
                         help="Shipped checkpoints first, then every run's checkpoints (newest run first), then opened ones.")
    path = Path(choices[label])
    try:
        generator = shared.get_generator(path)  # one load: the discriminator comes with it where the file has one
        mtime = os.path.getmtime(path)
    except (CheckpointError, OSError) as e:
        shared.show_error(e)
        st.stop()
    cfg = generator.config
    st.caption(f"{'exported generator' if generator.kind == 'generator' else 'training checkpoint'} · {cfg.model}, "
               f"{cfg.img_size}px, {generator.params:,} parameters · epoch {generator.epoch}, step {generator.step:,}"
               + (" · EMA weights" if generator.ema else "") + (" · with discriminator" if generator.D is not None else
                                                         " · no discriminator") + f" · `{path}`")
    return path, generator, mtime


def _range_help(name: str) -> str:
    lo, hi = generate.LIMITS[name]
    return f"A whole number from {lo:,} to {hi:,}."


def controls(generator: LoadedGenerator) -> tuple[int, int, int, float, int]:
    st.session_state.setdefault("gen_seed", 0)
    st.session_state.setdefault("gen_seed_b", 1)
    st.session_state.setdefault("gen_n", 64)
    st.session_state.setdefault("gen_cols", 8)
    c1, c2, c3 = st.columns(3)
    # No min/max on the inputs: a number out of range gets a message with the range (generate.LIMITS),
    # not a red border that keeps the old grid without a word.
    given = {"Seed": c1.number_input("Seed", step=1, key="gen_seed", on_change=_seed_changed,
                                     help=_range_help("Seed")),
             "Number of faces": c2.number_input("Number of faces", step=1, key="gen_n",
                                                help=_range_help("Number of faces")),
             "Columns": c3.number_input("Columns", step=1, key="gen_cols", help=_range_help("Columns"))}
    problems = [m for name, v in given.items() if (m := generate.out_of_range(name, v)) is not None]
    if problems:
        for m in problems:
            shared.show_error(m)
        st.stop()
    seed, n, cols = (int(v) for v in given.values())
    c4, c5 = st.columns([1, 2], vertical_alignment="bottom")
    c4.button("New seed", icon=":material/casino:", key="gen_new_seed", on_click=_new_seed, width="stretch",
              help="A random seed: new faces. Write the seed down to get them back.")
    psi = float(c5.slider("Truncation ψ", 0.3, 1.0, 1.0, 0.05, key="gen_psi",
                          help="Pulls every face toward the average face: 1 = off; lower = more typical faces, less "
                               "variety. The strip under the picked face shows what it does."))
    if generator.D is not None:
        k = int(st.slider("Discriminator re-ranking k", 1, 8, 1, key="gen_k",
                          help="Draw k×n faces, keep the n the discriminator rates highest (k = 1: off)."))
    else:
        k = 1
        st.caption(f"Discriminator re-ranking: not offered, {generator.path.name} carries no discriminator.",
                   help=no_discriminator_reason(generator, "Re-ranking"))
    return seed, n, cols, psi, k


def grid_section(path: Path, generator: LoadedGenerator, mtime: float, seed: int, n: int, cols: int, psi: float, k: int):
    try:
        made = _grid(str(Path(path).resolve()), mtime, seed, n, psi, k, cols)
    except (ValueError, RuntimeError) as e:
        shared.show_error(e)
        st.stop()
    res, dt, grid_png = made["res"], made["dt"], made["png"]
    st.session_state["gen_grid_png"] = grid_png
    pick = min(int(st.session_state.get("gen_pick", 0)), n - 1)
    st.session_state["gen_pick"] = pick
    from_grid = st.session_state.get("gen_source", "grid") == "grid"
    from app_pages.face_grid import face_grid
    face_grid(grid_png, n, cols, generator.config.img_size, PAD, pick if from_grid else None, key="gen_grid",
              on_pick=_picked_in_grid)
    drawn = f" (drawn {n * k}, kept the {n} D rated highest)" if k > 1 else ""
    st.caption(f"**Click a face to pick it.** Seed {seed}, indices {res.indices[0]}…{res.indices[-1]}{drawn}, "
               f"ψ = {psi:g} · :material/timer: {n} faces in {dt:.2f} s on the CPU"
               f"{' (with re-ranking)' if k > 1 else ''}.")
    with st.container(horizontal=True):
        # Both made when asked for (a callable): bytes given here would be a second copy of the picture
        # for the browser to fetch with the page.
        st.download_button("Grid (PNG)", lambda: grid_png, file_name=images.grid_name(seed), mime="image/png",
                           icon=":material/download:", key="gen_dl_grid")
        st.download_button("Every face (zip of PNGs)", lambda: images.to_zip(res.images, seed, res.indices),
                           file_name=images.grid_name(seed, "zip"), mime="application/zip",
                           icon=":material/download:", key="gen_dl_zip")
    return res, pick


def _current_face(generator: LoadedGenerator, res, pick: int, seed: int) -> tuple[torch.Tensor, str, int | None]:
    """The latent being looked at: a grid face, or the projection of an uploaded image."""
    proj = st.session_state.get("gen_projection")
    if st.session_state.get("gen_source") == "projection" and proj is not None and proj["ckpt"] == str(generator.path):
        return proj["z"], f"the projection of {proj['name']}", None
    st.session_state["gen_source"] = "grid"
    idx = res.indices[pick]
    return generate.latents(seed, [idx], generator.G.z_dim)[0], f"seed {seed}, index {idx}", idx


@dataclass
class Picked:
    """The face being looked at and how it is steered."""

    z: torch.Tensor                  # its latent, before the sliders
    shift: torch.Tensor              # the sliders' edit, added to z
    face: torch.Tensor               # uint8 (3, S, S) as shown: edited, truncated
    what: str                        # "seed 3, index 7" or "the projection of me.png"
    dirs: directions.Directions
    method: str
    strengths: dict[int, float]      # slider values, one per direction shown
    ckpt_hash: str


def picked_section(path: Path, generator: LoadedGenerator, mtime: float, res, pick: int, seed: int, psi: float) -> Picked:
    """The picked face, large, with a slider per latent direction."""
    z, what, idx = _current_face(generator, res, pick, seed)
    st.subheader("The picked face")
    ckpt_hash = _checkpoint_hash(str(path), mtime, os.path.getsize(path))
    left, right = st.columns([2, 3], gap="medium")
    with right:
        method = st.radio("Directions", directions.METHODS, format_func=METHOD_SHORT.get, key="gen_dir_method",
                          horizontal=True, help="SeFa: the eigenvectors of the first layer's weights (closed form). "
                                                "GANSpace: principal components of the first block's activations, "
                                                "mapped back to the latent.")
        n_dirs = int(st.slider("Sliders", 1, MAX_DIRECTIONS, 5, key="gen_dir_k"))
        dirs = _directions(str(path), mtime, method)
        names = directions.load_names(ckpt_hash, method)
        strengths = {}
        for i in range(n_dirs):
            strengths[i] = float(st.slider(f"Direction {directions.label(i, names)}", -directions.MAX_STRENGTH,
                                           directions.MAX_STRENGTH, 0.0, 0.25, key=f"gen_dir_{i}"))
        st.button("Reset sliders", icon=":material/restart_alt:", key="gen_dir_reset", on_click=_reset_sliders)
    shift = directions.shift(dirs, {i: s for i, s in strengths.items() if s})
    face = _face(str(path.resolve()), mtime, _z_bytes(z + shift), psi)
    edited = {i: s for i, s in strengths.items() if s}
    with left:
        smooth = st.toggle("Smooth", True, key="gen_smooth",
                           help="Enlargement filter. On: Lanczos (smooth). Off: nearest neighbour, every pixel a square.")
        scale = int(st.select_slider("Size", [2, 3, 4, 6, 8], 4, key="gen_zoom", format_func=lambda s: f"{s}×"))
        png = _png(face, scale, smooth)
        st.session_state["gen_face_png"] = png
        _show(png, caption=what + (f", edited ({len(edited)} directions)" if edited else ""))
        if idx is not None:
            same = _drawn_alone_is_identical(str(path.resolve()), mtime, seed, idx, psi, res.images[pick].numpy().tobytes())
            st.markdown(":green[:material/check_circle: redrawn alone from (seed, index): identical pixels]" if same
                        else ":orange[:material/warning: redrawn alone: differs (floating-point rounding on this device)]")
        else:
            st.button("Back to the grid's face", key="gen_back_to_grid",
                      on_click=lambda: st.session_state.update(gen_source="grid"))
    st.caption("Strength in standard deviations of the prior: a latent's coordinate along any direction is N(0, 1), "
               "so ±3 is as far as training latents went.")
    if idx is not None:
        cmd = commands.command("generate", always=("seed", "start"), checkpoint=str(path), seed=seed, start=idx, n=1,
                               truncation=psi, edit=[f"{i}={s:g}" for i, s in edited.items()] or None,
                               directions=method if edited else None, out="face.png")
        st.markdown(f"This face from the command line: {code_span(cmd)}")
    return Picked(z, shift, face, what, dirs, method, strengths, ckpt_hash)


def strips_section(generator: LoadedGenerator, p: Picked, psi: float):
    st.markdown("**What each direction does** — the picked face moved along it from −3 to +3, the other sliders "
                "as set.")
    ckpt_hash, method = p.ckpt_hash, p.method
    names = directions.load_names(ckpt_hash, method)
    n_dirs = len(p.strengths)
    path = str(Path(generator.path).resolve())
    for i in range(n_dirs):
        others = directions.shift(p.dirs, {j: s for j, s in p.strengths.items() if j != i and s})
        png = _direction_strip_png(path, os.path.getmtime(path), method, i, _z_bytes(p.z), _z_bytes(others), psi)
        _show(png, caption=f"direction {directions.label(i, names)}: "
                           + " · ".join(f"{s:+g}" for s in directions.STRIP_STEPS))
    with st.expander("Name the directions", icon=":material/edit:"):
        st.caption("A name is kept for this checkpoint (by the hash of its file, whatever its path) in the home "
                   f"folder (`{directions.names_dir()}`) and shown on the sliders and strips next time.")
        cells = st.columns(2)
        for i in range(n_dirs):
            key = f"gen_dname_{ckpt_hash[:12]}_{method}_{i}"
            st.session_state.setdefault(key, names.get(i, ""))
            cells[i % 2].text_input(f"Direction {i}", key=key, placeholder="e.g. hair colour", max_chars=60,
                                    on_change=_save_name, args=(ckpt_hash, method, i, key))


def truncation_section(generator: LoadedGenerator, p: Picked, psi: float):
    strip = generate.PSI_STRIP
    st.markdown("**Truncation ψ, previewed** — the picked face at ψ = " + ", ".join(f"{q:g}" for q in strip[:-1])
                + " and 0: truncation pulls the first block's features toward their mean over all latents, so at "
                  "ψ = 0 every face becomes the same average face (the last tile), the point the others head for. "
                  "Lower ψ: less variety, more typical faces.")
    path = str(Path(generator.path).resolve())
    png = _truncation_strip_png(path, os.path.getmtime(path), _z_bytes(p.z + p.shift))
    _show(png, caption=f"ψ {' · '.join(f'{q:g}' for q in strip)} (the average face)   (now: ψ = {psi:g})")


def interpolation_section(path: Path, generator: LoadedGenerator, mtime: float, z_start: torch.Tensor, what: str, psi: float):
    st.subheader("Interpolate from the picked face")
    st.session_state.setdefault("gen_interp_to", "a seed")
    pinned = st.session_state.get("gen_pinned")
    i1, i2 = st.columns(2, vertical_alignment="bottom")
    target = i1.radio("To", ["a seed", "the pinned face"], key="gen_interp_to", horizontal=True,
                      help="Pin a face (the button), then click another one in the grid: the walk goes from the "
                           "picked face to the pinned one.")
    i2.button("Pin the picked face", icon=":material/push_pin:", key="gen_pin", on_click=_pin_end, args=(z_start, what),
              help="Makes the face shown now the end of the walk.")
    j1, j2, j3 = st.columns(3)
    st.session_state.setdefault("gen_steps", 12)
    st.session_state.setdefault("gen_index_b", 0)
    given = {"Steps": j3.number_input("Steps", step=1, key="gen_steps", help=_range_help("Steps"))}
    if target == "the pinned face" and pinned is not None:
        z_end, end_what = pinned["z"], pinned["label"]
        j1.markdown(f"to the pinned face: **{end_what}**")
    else:
        given["Seed B"] = j1.number_input("Seed B", step=1, key="gen_seed_b",
                                          help="Follows the main seed (the next one). " + _range_help("Seed B"))
        given["Index B"] = j2.number_input("Index B", step=1, key="gen_index_b", help=_range_help("Index B"))
    problems = [m for name, v in given.items() if (m := generate.out_of_range(name, v)) is not None]
    for m in problems:
        shared.show_error(m)
    if problems:
        return
    steps = int(given["Steps"])
    if "Seed B" in given:
        seed_b, index_b = int(given["Seed B"]), int(given["Index B"])
        z_end, end_what = generate.latents(seed_b, [index_b], generator.G.z_dim)[0], f"seed {seed_b}, index {index_b}"
        if target == "the pinned face":
            st.caption("Nothing pinned yet: walking to the seed.")
    mode = st.radio("Path", ["slerp", "lerp"], horizontal=True, key="gen_mode",
                    help="slerp follows the sphere where Gaussian latents live; lerp is the straight line.")
    imemo = _interpolation(str(Path(path).resolve()), mtime, _z_bytes(z_start), _z_bytes(z_end), steps, mode, psi)
    frames = imemo["frames"]
    j1, j2 = st.columns(2)
    with j1:
        if int(st.session_state.get("gen_frame", 0)) > steps - 1:
            st.session_state["gen_frame"] = steps - 1
        fr = int(st.slider("Frame", 0, steps - 1, key="gen_frame"))
        _show(_png(frames[min(fr, len(frames) - 1)], 4, smooth=bool(st.session_state.get("gen_smooth", True))),
                 caption=f"frame {fr} of {steps - 1}: {what} → {end_what}")
    with j2:
        st.image(imemo["gif"], caption=f"{steps} steps there and back ({mode})")
        st.download_button("GIF", lambda: imemo["gif"], file_name="interpolation.gif", mime="image/gif",
                           icon=":material/download:", key="gen_dl_gif")


def projection_section(generator: LoadedGenerator):
    st.subheader("Bring your own face")
    st.caption("Upload an image: it is centre-cropped and resized as the training data was, then the generator's "
               "latent whose face is closest is searched for (several starts; pixel, Laplacian-pyramid and, where "
               "the checkpoint has a discriminator, its features). The result becomes the picked face: steer it with "
               "the sliders and interpolate from it.")
    up = st.file_uploader("An image of a face", type=FACE_TYPES, key="gen_face_upload")
    if st.button("Project into the generator", icon=":material/center_focus_strong:", key="gen_project",
                 disabled=up is None):
        try:
            target = load_face(up.getvalue(), generator.config.img_size, up.name)
        except DataError as e:
            shared.show_error(f"{up.name} cannot be used: {e}")
            return
        with st.spinner("Searching the latent space (a few seconds)..."):
            inv = invert(generator.G, target, D=generator.D)
        st.session_state["gen_projection"] = {"z": inv.z, "name": up.name, "ckpt": str(generator.path), "mae": inv.mae,
                                              "seconds": inv.seconds, "png": _png(side_by_side(inv.target, inv.image)),
                                              "used_d": inv.used_discriminator}
        st.session_state["gen_source"] = "projection"
        st.rerun()
    proj = st.session_state.get("gen_projection")
    if proj is not None and proj["ckpt"] == str(generator.path):
        _show(proj["png"], caption=f"{proj['name']} as loaded (left) and its projection (right): mean absolute "
                                      f"error {proj['mae']:.1f} of 255, {proj['seconds']:.1f} s")
        if not proj["used_d"]:
            st.caption(no_discriminator_reason(generator, "The feature term of the projection's loss")
                       + " Pixels and the Laplacian pyramid were used.")
        if st.session_state.get("gen_source") != "projection":
            st.button("Pick the projection", key="gen_use_projection",
                      on_click=lambda: st.session_state.update(gen_source="projection"))


def _default_source(generator: LoadedGenerator) -> str:
    src = str(generator.config.data or "")
    return src if src == "synthetic" or (src and Path(src).expanduser().exists()) else ""


def memorisation_section(generator: LoadedGenerator, face: torch.Tensor, what: str):
    st.subheader("Is it a copy? Nearest training faces")
    st.session_state.setdefault("gen_mem_data", _default_source(generator))
    st.text_input("Training data (folder, .zip or synthetic)", key="gen_mem_data",
                  help="The data this checkpoint trained on (from its config where that path exists here). It is "
                       "split as the run split it, so only its training faces are searched.")
    if st.button("Search the training faces", icon=":material/search:", key="gen_mem_go"):
        st.session_state["gen_mem_source"] = str(st.session_state.get("gen_mem_data") or "").strip()
    source = st.session_state.get("gen_mem_source")
    if not source:
        st.caption("Compares the picked face with every training face, in pixels (32 px) and, where the checkpoint "
                   "has a discriminator, in the discriminator's feature space.")
        return
    cfg = generator.config
    try:
        data = _training_data(source, cfg.img_size, cfg.val_size, cfg.test_size, cfg.split_seed, cfg)
        with st.spinner("Searching the training faces..."):
            found = memorisation.nearest_training_faces(face, data, k=5, D=generator.D)
    except (DataError, ValueError, OSError) as e:
        shared.show_error(e)
        return
    for space, nb in found.items():
        row = torch.cat([face[None], nb.images])
        _show(_png(row, 2), caption=f"{what} (left), then its 5 nearest training faces in "
                                       f"{memorisation.SPACE_LABELS[space]}: "
                                       + ", ".join(f"{d:.3g}" for d in nb.distances))
    if generator.D is None:
        st.caption(no_discriminator_reason(generator, "The feature-space search") + " Pixels only.")
    score_section(generator, data, source)


def score_section(generator: LoadedGenerator, data, source: str):
    s1, s2 = st.columns(2, vertical_alignment="bottom")
    n = int(s1.number_input("Generated faces to score", 50, 5000, 500, 50, key="gen_mem_n"))
    if s2.button("Memorisation score", icon=":material/analytics:", key="gen_mem_score"):
        with st.spinner(f"Scoring {n} faces..."):
            r = memorisation.memorisation_score(generator.G, data, n=n, D=generator.D)
        st.session_state["gen_mem_result"] = {"key": (str(generator.path), source), "r": r}
    res = st.session_state.get("gen_mem_result")
    if res is None or res["key"] != (str(generator.path), source):
        return
    r = res["r"]
    st.dataframe([{"space": memorisation.SPACE_LABELS[s.space], "score": round(s.share, 3),
                   "threshold": round(s.threshold, 3), "median distance, generated": round(float(np.median(s.generated)), 3),
                   "median distance, held-out real": round(float(np.median(s.reference)), 3)}
                  for s in r.spaces.values()], hide_index=True)
    st.caption(f"**How to read it.** For {r.n_reference} held-out real faces (the val split, never trained on) the "
               f"distance to their nearest training face is measured; the threshold is the {r.percentile:g}th "
               f"percentile of those: only 1 in {round(100 / r.percentile)} new real faces is that close to a "
               f"training face. The score is the share of {r.n} generated faces (seed {r.seed}) at most that close. "
               f"A generator that copies training faces scores near 1; one whose faces are as new as real held-out "
               f"faces scores about {r.percentile / 100:.2f}; far below that, its faces are farther from the training "
               f"set than real faces are (blurry or off-distribution), which says nothing about copying.")


# =========================================================================== page
shared.narrow_window_layout()
st.title("Generate")
st.caption("Every face is addressed by **(seed, index)**: the same seed always gives the same faces, and face *i* "
           "of a grid is the same face when drawn alone.")
path, generator, mtime = checkpoint_section()
seed, n, cols, psi, k = controls(generator)
res, pick = grid_section(path, generator, mtime, seed, n, cols, psi, k)
# Below the grid, out of sight in a new visit's first screen: drawn once the browser has painted
# the page (after_paint), at once on every later run of this session.
if after_paint.painted(BELOW_THE_GRID, "Drawing the picked face, its directions and the other tools..."):
    picked = picked_section(path, generator, mtime, res, pick, seed, psi)
    strips_section(generator, picked, psi)
    truncation_section(generator, picked, psi)
    interpolation_section(path, generator, mtime, picked.z + picked.shift, picked.what, psi)
    projection_section(generator)
    memorisation_section(generator, picked.face, picked.what)
