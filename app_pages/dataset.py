"""Dataset: pick a source (built-in synthetic set, a folder, an uploaded zip), prepare it once,
read its validation report, browse it, and preview the augmentation and the normalisation."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from streamlit.errors import StreamlitAPIException

from animegan import data, paths, synth, uploads
from animegan.augment import DIFFAUG_OPS
from animegan.config import IMAGE_SIZES, SYNTHETIC, TrainConfig, preset_config
from app_pages import shared

PAGE_SIZE = 48
SOURCES = {SYNTHETIC: "Built-in synthetic set", "folder": "A folder (or .zip) on this machine",
           "upload": "Upload a zip"}
RECIPE = preset_config("anime64")   # the default recipe: the augmentation preview starts from its settings
TRAIN_PAGE = "app_pages/train.py"
HANDOFF = "train_handoff"           # read (once) by the Train page
SAVED = "dataset_saved"             # non-widget copy of the choices below: survives visits to other pages
KEPT = ("ds_kind", "ds_size", "ds_folder", "ds_upload_pick")


def synthetic_n() -> int | None:
    """The size of the synthetic set already on disk (so preparing it renders nothing), or None
    (the default number of faces is rendered on first use)."""
    return synth.rendered_n(paths.synthetic_dir())


def run_prepare(source: str, size: int) -> data.PreparedData | None:
    bar = st.progress(0.0, text="Preparing...")

    def progress(done: int, total: int) -> None:
        bar.progress(min(1.0, done / total) if total else 1.0, text=f"Preparing: {done:,} / {total:,} images")

    try:
        pdata = data.prepare(source, size, progress=progress,
                             synthetic_n=synthetic_n() if source == SYNTHETIC else None)
    except (data.DataError, ValueError, OSError) as e:
        bar.empty()
        shared.show_error(e)
        return None
    bar.empty()
    st.session_state.setdefault("ds_prepared", {})[f"{source}|{size}"] = pdata
    return pdata


def upload_source() -> str | None:
    """The upload part: a new upload is extracted (one package call) and becomes the one in use;
    a refused one shows its error alone (no earlier data set's report under it) and is kept
    nowhere; earlier uploads stay selectable. Returns the extracted folder in use, or None."""
    ss = st.session_state
    up = st.file_uploader("A .zip of images", type=["zip"], key="ds_upload")
    if up is None:
        ss.pop("ds_upload_failed", None)
    elif ss.get("ds_upload_id") != up.file_id:
        ss["ds_upload_id"] = up.file_id
        try:
            with st.spinner(f"Extracting {up.name}..."):
                dest = uploads.extract_upload(up)
        except (uploads.UploadError, OSError) as e:
            ss["ds_upload_failed"] = f"The upload was not used: {e}"
        else:
            ss.pop("ds_upload_failed", None)
            ss["ds_upload_dest"] = ss["ds_upload_pick"] = str(dest)  # the new upload is the one in use
            prepared = ss.get("ds_prepared", {})
            for k in [k for k in prepared if k.startswith(f"{dest}|")]:  # an earlier upload of that name
                del prepared[k]
    if ss.get("ds_upload_failed"):
        shared.show_error(ss["ds_upload_failed"])
        st.caption("Remove it (× above) to go back to an earlier upload, or upload another zip.")
        return None
    extracted = [str(p) for p in uploads.list_extracted()]
    if not extracted:
        st.info(f"Upload a .zip of images; it is extracted (safely: size caps, no paths outside) into "
                f"`{paths.uploads_dir()}` and then used like a folder.")
        return None
    if ss.get("ds_upload_pick") not in extracted:
        ss["ds_upload_pick"] = extracted[0]
    source = st.selectbox("Extracted upload to use", extracted, format_func=lambda s: Path(s).name,
                          key="ds_upload_pick", help="Every upload that was extracted, newest first")
    st.caption(f"Extracted to `{source}`")
    rep = uploads.read_report(source)
    if rep is not None:
        with st.expander("What the upload contained"):
            st.text(rep.summary())
    return source


def augment_views(sample: np.ndarray, flip: float, bright: float, strength: float, policy: list[str],
                  seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The images as stored, after the classic augmentation, and after DiffAugment on top (uint8)."""
    import torch

    from animegan import augment
    before, after = augment.preview(sample, augment.ClassicAugment(flip=flip, brightness=bright,
                                                                 brightness_strength=strength), seed=seed)
    g = torch.Generator().manual_seed(seed)
    seen = data.to_uint8(augment.diff_augment(data.to_float(after), ",".join(policy), g))
    return before.numpy(), after.numpy(), seen.numpy()


def train_on_this(source: str, size: int, flip: float, bright: float, strength: float, policy: list[str]) -> None:
    """Hand the source, size and augmentation to the Train page's form and go there."""
    st.session_state[HANDOFF] = {"data": source, "img_size": int(size), "aug_flip": float(flip),
                                 "aug_brightness": float(bright), "aug_brightness_strength": float(strength),
                                 "diffaug": list(policy)}
    try:
        st.switch_page(TRAIN_PAGE)
    except StreamlitAPIException:  # this page runs on its own (not inside app.py's navigation)
        st.success("The Train page's form is filled with this data: open **Train** in the sidebar.")


def to_hwc(img: np.ndarray, scale: int = 1) -> np.ndarray:
    a = np.ascontiguousarray(np.asarray(img).transpose(1, 2, 0))
    if scale > 1:
        a = a.repeat(scale, axis=0).repeat(scale, axis=1)
    return a


def grid_png(images: np.ndarray, cols: int = 8, scale: int = 2) -> bytes:
    import torch

    from animegan import generate
    g = generate.upscale(generate.to_grid(torch.as_tensor(np.asarray(images)), cols=cols, padding=2), scale)
    buf = io.BytesIO()
    g.save(buf, format="PNG")
    return buf.getvalue()


def show_report(pdata: data.PreparedData) -> None:
    rep = pdata.report
    c = st.columns(5)
    c[0].metric("Image files", f"{rep.total:,}")
    c[1].metric("Usable", f"{rep.usable:,}")
    c[2].metric("Skipped", f"{rep.n_skipped:,}")
    c[3].metric("Exact duplicates", f"{len(rep.duplicates):,}", help="Same bytes: kept once.")
    c[4].metric("Other files ignored", f"{rep.ignored_other:,}", help="Files without an image extension.")
    how = ("from the cache, nothing decoded" if pdata.from_cache
           else f"{pdata.decoded:,} files decoded" + (f" (cache rebuilt: {pdata.rebuilt_because})"
                                                        if pdata.rebuilt_because else ""))
    st.caption(f"{len(pdata):,} images of {pdata.size}×{pdata.size} px — {how}. Splits: "
               + ", ".join(f"{k} {len(v):,}" for k, v in pdata.splits.items())
               + f". Cache: `{pdata.cache_path}`")
    cols = st.columns(2)
    with cols[0]:
        if rep.skipped:
            st.markdown("**Skipped files** (not used for training)")
            st.dataframe(pd.DataFrame([
                {"reason": reason, "files": len(names), "first names": ", ".join(names[:5])
                 + (f", … (+{len(names) - 5:,})" if len(names) > 5 else "")}
                for reason, names in sorted(rep.skipped.items()) if names]), hide_index=True)
        else:
            st.success("No file had to be skipped.")
        if rep.duplicates:
            with st.expander(f"{len(rep.duplicates):,} exact duplicates (kept once)"):
                st.dataframe(pd.DataFrame([{"kept": a, "duplicate": b} for a, b in rep.duplicates[:200]]),
                             hide_index=True)
    with cols[1]:
        if rep.converted:
            st.markdown("**Conversions** (done while preparing)")
            st.dataframe(pd.DataFrame([{"conversion": k, "images": v} for k, v in sorted(rep.converted.items())]),
                         hide_index=True)
        else:
            st.caption("No conversion was needed (all RGB, square, at least the training size).")


def histogram_figs(sample: np.ndarray, bins: int = 64) -> tuple[go.Figure, go.Figure]:
    """The same pixels twice: as stored (uint8) and as the networks see them (data.to_float)."""
    import torch
    colors = {"R": "#e45756", "G": "#54a24b", "B": "#4c78a8"}
    before, after = go.Figure(), go.Figure()
    norm = data.to_float(torch.as_tensor(sample)).numpy()
    for ch, name in enumerate("RGB"):
        h, e = np.histogram(sample[:, ch], bins=bins, range=(0, 256))
        before.add_trace(go.Bar(x=(e[:-1] + e[1:]) / 2, y=h, name=name, marker_color=colors[name], opacity=0.6))
        h, e = np.histogram(norm[:, ch], bins=bins, range=(-1.0, 1.0))
        after.add_trace(go.Bar(x=(e[:-1] + e[1:]) / 2, y=h, name=name, marker_color=colors[name], opacity=0.6))
    for fig, title, rng in ((before, "As stored: uint8, 0..255", [0, 255]),
                            (after, "Normalised to [-1, 1] (G's tanh, D's input)", [-1, 1])):
        fig.update_layout(title=title, barmode="overlay", bargap=0, xaxis_title="pixel value", yaxis_title="pixels",
                          height=320, margin=dict(t=40, b=40, l=50, r=10))
        fig.update_xaxes(range=rng)
    return before, after


# =========================================================================== page
shared.narrow_window_layout()
st.title("Dataset")
st.caption("A source is prepared once: every image is read, checked, converted to RGB, center-cropped and "
           "resized, and kept in a cache. What cannot be used is skipped and reported here — never silently.")

for k, v in st.session_state.get(SAVED, {}).items():  # the choices of an earlier visit to this page
    st.session_state.setdefault(k, v)
st.session_state.setdefault("ds_size", TrainConfig.img_size)
top = st.columns([3, 1])
kind = top[0].radio("Source", list(SOURCES), format_func=SOURCES.get, horizontal=True, key="ds_kind")
size = top[1].selectbox("Image size (px)", IMAGE_SIZES, key="ds_size")

source: str | None = None
if kind == SYNTHETIC:
    source = SYNTHETIC
    try:
        st.caption(f"Source: {data.describe_source(SYNTHETIC)}. Procedurally drawn anime faces, so the whole tool "
                   "works with no data and no network.")
    except data.DataError as e:
        shared.show_error(e)
elif kind == "folder":
    typed = st.text_input("Path to a folder of images (searched recursively) or a .zip of images",
                          key="ds_folder", placeholder="/home/me/anime-faces")
    if typed.strip():
        source = typed.strip()
        try:
            st.caption(f"Source: {data.describe_source(source)}")
        except data.DataError as e:
            shared.show_error(e)
            source = None
    else:
        st.info(f"Type the path of a folder that holds images ({', '.join(data.IMAGE_EXTS)}), or of a .zip of them.")
else:
    source = upload_source()
st.session_state[SAVED] = {k: st.session_state[k] for k in KEPT if k in st.session_state}

if source is None:
    st.stop()

key = f"{source}|{size}"
prepared: dict = st.session_state.setdefault("ds_prepared", {})
pdata = prepared.get(key)
if pdata is None:
    if data.find_cache(source, size) is not None:  # prepared before: loading it decodes nothing
        pdata = run_prepare(source, size)
    else:
        note = ""
        if source == SYNTHETIC and synthetic_n() is None:
            note = f" The synthetic set is rendered first ({synth.DEFAULT_N:,} faces: about 30–60 s on a CPU)."
        st.info("This source has not been prepared at this size yet: every image will be read and checked once, "
                "then cached (a large folder takes a while)." + note)
        if st.button("Prepare", type="primary", key="ds_prepare") and run_prepare(source, size) is not None:
            # Drawn again from the top: the "not prepared yet" box and this button go, the report comes.
            shared.flash("ds", "success", f"Prepared {data.describe_source(source)} at {size} px.")
            st.rerun()
if pdata is None:
    st.stop()
shared.show_flash("ds")

if st.button("Check the source again", key="ds_recheck", help="Re-reads the source listing; decodes again only "
             "what changed (the cache is rebuilt when files were added, removed or modified)."):
    pdata = run_prepare(source, size) or pdata

st.subheader("Validation report")
show_report(pdata)

# --------------------------------------------------------------------------- browse
st.subheader("Browse")
N = len(pdata)
n_pages = max(1, -(-N // PAGE_SIZE))
b = st.columns([1, 1, 1, 3], vertical_alignment="bottom")
shuffle = b[0].toggle("Shuffle", key="ds_shuffle")
shuffle_seed = int(b[1].number_input("Shuffle seed", 0, 2**31 - 1, 0, key="ds_shuffle_seed", disabled=not shuffle))
page = int(b[2].number_input(f"Page (of {n_pages:,})", 1, n_pages, 1, key="ds_page"))
order = np.random.default_rng(shuffle_seed).permutation(N) if shuffle else np.arange(N)
on_page = order[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
if on_page.size == 0:
    on_page = order[:PAGE_SIZE]
batch = np.asarray(pdata.images[on_page])
b[3].caption(f"Images {(page - 1) * PAGE_SIZE + 1:,}–{(page - 1) * PAGE_SIZE + len(on_page):,} of {N:,}"
             + (f", shuffled with seed {shuffle_seed}" if shuffle else ", in name order") + ". `#` is the index in the cache.")
st.image([to_hwc(im, 2) for im in batch], caption=[f"#{i}" for i in on_page], width=88)

split_of = {int(i): name for name, idx in pdata.splits.items() for i in idx}
d1, d2 = st.columns([1, 2])
with d1:
    pick = st.selectbox("Look at one image", [int(i) for i in on_page],
                        format_func=lambda i: f"#{i}  {pdata.names[i]}", key="ds_pick")
    st.image(to_hwc(pdata.images[pick], 4), caption=f"#{pick} as trained on ({pdata.size}×{pdata.size}, ×4)")
with d2:
    info = {"index": pick, "name": f"`{pdata.names[pick]}`", "split": split_of.get(pick, "?"),
            "prepared size": f"{pdata.size}×{pdata.size} px"}
    original = data.describe_member(pdata.source, pdata.names[pick])
    if original is not None:  # the prepared copy is what matters; the original may have changed
        info["original"] = original
    st.markdown("  \n".join(f"**{k}:** {v}" for k, v in info.items()))

# --------------------------------------------------------------------------- augmentation
st.subheader("Augmentation preview")
st.caption("Two kinds, as set on the Train page. The classic augmentation of real images (random horizontal flip, "
           "brightness jitter: `aug_flip`, `aug_brightness`, `aug_brightness_strength`) changes what G learns to draw. "
           "DiffAugment (`diffaug`) is applied to real *and* generated images right before D, so D cannot memorise the "
           "data. The default recipe (anime64) uses flips and DiffAugment *translation*. Samples and FID's real images "
           "are never augmented.")
a = st.columns(3)
flip = a[0].slider("Flip probability", 0.0, 1.0, RECIPE.aug_flip, 0.05, key="ds_aug_flip")
bright = a[1].slider("Brightness probability", 0.0, 1.0, RECIPE.aug_brightness, 0.05, key="ds_aug_bright")
strength = a[2].slider("Brightness strength", 0.0, 0.5, RECIPE.aug_brightness_strength, 0.05, key="ds_aug_strength",
                       help="The factor is drawn uniformly from [1 − s, 1 + s].")
a = st.columns([2, 1])
policy = a[0].multiselect("DiffAugment policy (what D sees)", list(DIFFAUG_OPS), key="ds_aug_diffaug",
                          default=[p for p in RECIPE.diffaug.split(",") if p],
                          help="Applied to real and generated images right before D, in this order")
aug_seed = int(a[1].number_input("Augmentation seed", 0, 2**31 - 1, 0, key="ds_aug_seed"))
try:
    sample = batch[:16]
    before, after, seen = augment_views(sample, flip, bright, strength, policy, aug_seed)
    g = st.columns(3)
    g[0].image(grid_png(before, cols=4), caption="before (the first 16 images of this page)")
    g[1].image(grid_png(after, cols=4), caption=f"classic augmentation: what G learns from (seed {aug_seed})")
    g[2].image(grid_png(seen, cols=4), caption=f"then DiffAugment {', '.join(policy) or '(none)'}: what D sees")
except ValueError as e:
    shared.show_error(e)

if st.button("Train on this data", icon=":material/model_training:", type="primary", key="ds_train"):
    train_on_this(source, size, flip, bright, strength, policy)
st.caption(f"Opens the Train page with this source (`{source}`), {size} px images and the augmentation above; "
           "the other settings stay as they are there.")

st.subheader("Pixel values before and after normalisation")
hist_sample = np.asarray(pdata.images[order[:512]])
fb, fa = histogram_figs(hist_sample)
h1, h2 = st.columns(2)
h1.plotly_chart(fb, key="ds_hist_before")
h2.plotly_chart(fa, key="ds_hist_after")
st.caption(f"{len(hist_sample):,} images, every pixel of every channel. Normalisation x/127.5 − 1 maps 0..255 onto "
           "[-1, 1], the range of the generator's tanh output.")
