"""Generate: faces from any checkpoint, reproducibly by (seed, index); one face large,
interpolation between two seeds, downloads."""
from __future__ import annotations

import io
import os
import secrets
import time
from pathlib import Path

import streamlit as st
import torch

from animegan import generate, paths
from animegan.checkpoint import CheckpointError
from pages import shared

MAX_SEED = shared.MAX_SEED


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
        dest = generate.save_checkpoint_upload(up.name, up.getvalue())
    except OSError as e:
        st.session_state["gen_open_error"] = f"could not save the upload: {e}"
        return
    _open(dest)


def _new_seed() -> None:
    st.session_state["gen_seed"] = secrets.randbelow(MAX_SEED + 1)


# =========================================================================== page
st.title("Generate")
st.caption("Every face is addressed by **(seed, index)**: the same seed always gives the same faces, and face *i* "
           "of a grid is the same face when drawn alone.")

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
    lg = shared.get_generator(path)  # one load: a training checkpoint's discriminator comes with it
    mtime = os.path.getmtime(path)
except (CheckpointError, OSError) as e:
    shared.show_error(e)
    st.stop()
has_d = lg.D is not None
cfg = lg.config
st.caption(f"{'exported generator' if lg.kind == 'generator' else 'training checkpoint'} · {cfg.model}, "
           f"{cfg.img_size}px, {lg.params:,} parameters · epoch {lg.epoch}, step {lg.step:,}"
           + (" · EMA weights" if lg.ema else "") + f" · `{path}`")

left, right = st.columns([1, 3], gap="large")
with left:
    st.session_state.setdefault("gen_seed", 0)
    seed = int(st.number_input("Seed", 0, MAX_SEED, step=1, key="gen_seed"))
    st.button("New seed", icon=":material/casino:", key="gen_new_seed", on_click=_new_seed, width="stretch",
              help="A random seed: new faces. Write the seed down to get them back.")
    n = int(st.number_input("Number of faces", 1, 256, 64, key="gen_n"))
    cols = int(st.number_input("Columns", 1, 32, 8, key="gen_cols"))
    psi = float(st.slider("Truncation ψ", 0.3, 1.0, 1.0, 0.05, key="gen_psi",
                          help="Scales the latent: 1 = off; lower = more typical faces, less variety."))
    if has_d:
        k = int(st.slider("Discriminator re-ranking k", 1, 8, 1, key="gen_k",
                          help="Draw k×n faces, keep the n the discriminator rates highest (k = 1: off)."))
    else:
        k = 1
        st.caption("Discriminator re-ranking needs a training checkpoint (exports carry no discriminator).")

G = lg.G
D = lg.D if k > 1 else None
mkey = (str(path), mtime, seed, n, psi, k)
memo = st.session_state.get("gen_memo")
if memo is None or memo.get("key") != mkey:
    try:
        t0 = time.perf_counter()
        res = generate.generate(G, seed, n, truncation=psi, D=D, rerank=k)
        dt = time.perf_counter() - t0
    except (ValueError, RuntimeError) as e:
        shared.show_error(e)
        st.stop()
    memo = {"key": mkey, "res": res, "dt": dt}
    st.session_state["gen_memo"] = memo
res, dt = memo["res"], memo["dt"]
grid = generate.to_grid(res.images, cols=cols)
grid_png = generate.png_bytes(grid)
st.session_state["gen_grid_png"] = grid_png
st.session_state["gen_render_s"] = dt

with right:
    scale = max(1, min(6, round(900 / max(1, grid.width))))
    drawn = f" (drawn {n * k}, kept the {n} D rated highest)" if k > 1 else ""
    st.image(generate.png_bytes(generate.upscale(grid, scale)) if scale > 1 else grid_png,
             caption=f"seed {seed}, indices {res.indices[0]}…{res.indices[-1]}{drawn}, ψ = {psi:g}")
    st.caption(f":material/timer: {n} faces in {dt:.2f} s on the CPU{' (with re-ranking)' if k > 1 else ''}.")
    with st.container(horizontal=True):
        st.download_button("Grid (PNG)", grid_png, file_name=generate.grid_name(seed), mime="image/png",
                           icon=":material/download:", key="gen_dl_grid")
        st.download_button("Every face (zip of PNGs)", generate.to_zip(res.images, seed, res.indices),
                           file_name=generate.grid_name(seed, "zip"), mime="application/zip", icon=":material/download:",
                           key="gen_dl_zip")

# --------------------------------------------------------------------------- one face
st.subheader("One face, large")
st.caption("Pick a face of the grid (numbered left to right, top to bottom, from 0). It is drawn again on its "
           "own from (seed, index): the pixels match.")
f1, f2, f3 = st.columns([1, 1, 1])
with f1:
    if int(st.session_state.get("gen_pick", 0)) > n - 1:
        st.session_state["gen_pick"] = n - 1
    pos = int(st.number_input("Face in the grid", 0, n - 1, key="gen_pick", help="0 = top left"))
    pos = min(pos, len(res.indices) - 1)
    idx = res.indices[pos]
    st.markdown(f"**seed {seed}, index {idx}**" + (f"  \nD score {res.scores[pos]:.3f}" if res.scores else ""))
    st.code(f"python -m animegan generate --checkpoint {path} --seed {seed} --start {idx} --n 1"
            + (f" --truncation {psi:g}" if psi != 1 else "") + " --out face.png", language="bash", wrap_lines=True)
face = res.images[pos]
alone = generate.generate(G, seed, 1, start=idx, truncation=psi).images[0]
same = bool(torch.equal(face, alone))
f2.image(generate.png_bytes(generate.upscale(generate.to_pil(face), 4)), caption=f"from the grid: (seed {seed}, index {idx})")
f3.image(generate.png_bytes(generate.upscale(generate.to_pil(alone), 4)),
         caption=f"regenerated alone: generate(G, {seed}, 1, start={idx})")
f3.markdown(":green[:material/check_circle: identical pixels]" if same
            else ":orange[:material/warning: differs (floating-point rounding on this device)]")

# --------------------------------------------------------------------------- interpolation
st.subheader("Interpolate between two seeds")
i1, i2, i3, i4 = st.columns(4)
seed_a = int(i1.number_input("Seed A", 0, MAX_SEED, seed, key="gen_seed_a"))
seed_b = int(i2.number_input("Seed B", 0, MAX_SEED, seed + 1 if seed < MAX_SEED else 0, key="gen_seed_b"))
steps = int(i3.number_input("Steps", 2, 64, 12, key="gen_steps"))
mode = i4.radio("Path", ["slerp", "lerp"], horizontal=True, key="gen_mode",
                help="slerp follows the sphere where Gaussian latents live; lerp is the straight line.")
ikey = (str(path), mtime, seed_a, seed_b, steps, mode, psi)
imemo = st.session_state.get("gen_interp")
if imemo is None or imemo.get("key") != ikey:
    frames = generate.interpolate(lg.G, seed_a, seed_b, steps, mode=mode, truncation=psi)
    gif = io.BytesIO()
    generate.to_gif(frames, gif, fps=10, upscale=4)
    imemo = {"key": ikey, "frames": frames, "gif": gif.getvalue()}
    st.session_state["gen_interp"] = imemo
frames = imemo["frames"]
j1, j2 = st.columns(2)
with j1:
    if int(st.session_state.get("gen_frame", 0)) > steps - 1:
        st.session_state["gen_frame"] = steps - 1
    fr = int(st.slider("Frame", 0, steps - 1, key="gen_frame"))
    st.image(generate.png_bytes(generate.upscale(generate.to_pil(frames[min(fr, len(frames) - 1)]), 4)),
             caption=f"frame {fr} of {steps - 1}: image (seed {seed_a}, 0) → (seed {seed_b}, 0)")
with j2:
    st.image(imemo["gif"], caption=f"{steps} steps there and back ({mode})")
    st.download_button("GIF", imemo["gif"], file_name=generate.interpolation_name(seed_a, seed_b), mime="image/gif",
                       icon=":material/download:", key="gen_dl_gif")
