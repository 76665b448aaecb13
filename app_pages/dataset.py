"""Dataset: pick a source (built-in synthetic set, a folder, an uploaded zip), prepare it once,
read its validation report, browse it, and preview the augmentation and the normalisation."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st
from streamlit.errors import StreamlitAPIException

from animegan import data, paths, synth, uploads
from animegan.augment import DIFFAUG_OPS
from animegan.config import IMAGE_SIZES, PRESETS, SYNTHETIC, TrainConfig, preset_config
from animegan.data import curate
from app_pages import shared

PAGE_SIZE = 48
SOURCES = {SYNTHETIC: "Built-in synthetic set", "folder": "A folder (or .zip) on this machine",
           "upload": "Upload a zip"}
RECIPE = preset_config("anime64")   # the default recipe: the augmentation preview starts from its settings
TRAIN_PAGE = "app_pages/train.py"
HANDOFF = "train_handoff"           # read (once) by the Train page
SAVED = "dataset_saved"             # non-widget copy of the choices below: survives visits to other pages
KEPT = ("ds_kind", "ds_size", "ds_folder", "ds_upload_pick")
NEW_SOURCE = "dataset_new_source"   # a saved curated set: becomes the source on the next run (set before the widgets)
SMALL_DATA_PRESET = "finetune-small"
assert SMALL_DATA_PRESET in PRESETS
DEFAULT_BASE = "anime64.pt"         # the shipped checkpoint a generator of the user's own faces starts from
DEFAULT_MINUTES = 10
GALLERY = 24                        # images per curation gallery
CURATED_DIR = "curated"             # under paths.home(): where curated sets are saved
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$")


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
    """The upload part: a new upload is checked and kept (one package call) and becomes the one in
    use; a refused one shows its error alone (no earlier data set's report under it) and is kept
    nowhere; earlier uploads stay selectable. Returns the upload in use, or None."""
    state = st.session_state
    up = st.file_uploader("A .zip of images", type=["zip"], key="ds_upload")
    if up is None:
        state.pop("ds_upload_failed", None)
    elif state.get("ds_upload_id") != up.file_id:
        state["ds_upload_id"] = up.file_id
        try:
            with st.spinner(f"Checking {up.name}..."):
                dest = uploads.save_upload(up)
        except (uploads.UploadError, OSError) as e:
            state["ds_upload_failed"] = f"The upload was not used: {e}"
        else:
            state.pop("ds_upload_failed", None)
            state["ds_upload_dest"] = state["ds_upload_pick"] = str(dest)  # the new upload is the one in use
            prepared = state.get("ds_prepared", {})
            for k in [k for k in prepared if k.startswith(f"{dest}|")]:  # an earlier upload of that name
                del prepared[k]
    if state.get("ds_upload_failed"):
        shared.show_error(state["ds_upload_failed"])
        st.caption("Remove it (× above) to go back to an earlier upload, or upload another zip.")
        return None
    kept = [str(p) for p in uploads.list_uploads()]
    if not kept:
        st.info(f"Upload a .zip of images; it is kept in `{paths.uploads_dir()}` and read in place like any zip "
                f"(safely: size caps, nothing unpacked).")
        return None
    if state.get("ds_upload_pick") not in kept:
        state["ds_upload_pick"] = kept[0]
    source = st.selectbox("Upload to use", kept, format_func=lambda s: Path(s).name,
                          key="ds_upload_pick", help="Every upload, newest first")
    st.caption(f"Kept as `{source}`")
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


# --------------------------------------------------------------------------- curation
@st.cache_data(show_spinner=False, max_entries=8)
def analyse_cached(source: str, size: int, fingerprint: str) -> curate.Curation:
    """curate.analyse, once per source content (`fingerprint`) and size; the synthetic set as it is on
    disk (never rendered again at another number of faces)."""
    return curate.analyse(source, size, synthetic_n=synthetic_n() if source == SYNTHETIC else None)


def curated_path(name: str) -> Path:
    """Where a curated set named `name` is saved; raises DataError with what to do for a bad or taken name."""
    name = name.strip()
    if name.lower().endswith(".zip"):
        name = name[:-4].rstrip()
    if not name:
        raise data.DataError("Give the curated set a name (letters, digits, spaces, '-', '_' or '.').")
    if not SAFE_NAME.match(name):
        raise data.DataError(f"\"{name}\" cannot be used as a name: use letters, digits, spaces, '-', '_' or '.' "
                             "(at most 64, starting with a letter or digit).")
    out = paths.home() / CURATED_DIR / f"{name}.zip"
    if out.exists():
        raise data.DataError(f"A curated set named \"{name}\" already exists ({out}); pick another name.")
    return out


def pixels_by_name(pdata: data.PreparedData) -> dict[str, int]:
    """Name -> index into pdata.images; exact copies (kept once by prepare) point to their first."""
    index = {n: i for i, n in enumerate(pdata.names)}
    for first, copy in pdata.report.duplicates:
        if first in index:
            index.setdefault(copy, index[first])
    return index


def gallery(pdata: data.PreparedData, index: dict[str, int], items: list[tuple[str, str]]) -> None:
    """Images by name, each with its caption; a name that is not in the prepared set is left out."""
    shown = [(index[n], cap) for n, cap in items if n in index]
    if shown:
        st.image([to_hwc(pdata.images[i], 2) for i, _ in shown], caption=[c for _, c in shown], width=88)


def save_curated(cur: curate.Curation, decisions: curate.Decisions, name: str, size: int) -> None:
    try:
        if not decisions.kept:
            raise data.DataError("Nothing is left to save: every image is excluded. Keep some (lower the "
                                 "thresholds or un-pick images) and save again.")
        out = curated_path(name)
        paths.ensure(out.parent)
        with st.spinner(f"Writing {len(decisions.kept):,} images to {out.name}..."):
            curate.write_curated(cur, decisions, out)
    except (data.DataError, OSError) as e:
        shared.show_error(e)
        return
    run_prepare(str(out), size)  # the new source is shown prepared, not behind a Prepare button
    st.session_state[NEW_SOURCE] = str(out)
    shared.flash("ds", "success", f"Saved {len(decisions.kept):,} images ({len(decisions.dropped):,} left out) as "
                 f"`{out}`. It is now this page's source (a .zip on this machine); the decisions are in "
                 f"its {curate.DECISIONS_FILE}.")
    st.rerun()


def make_generator(source: str, size: int, base: Path, minutes: float) -> None:
    """Hand the source, the small-data recipe, the base checkpoint and the time budget to the Train page."""
    st.session_state[HANDOFF] = {"data": source, "img_size": int(size), "preset": SMALL_DATA_PRESET,
                                 "init_from": str(base), "minutes": float(minutes)}
    try:
        st.switch_page(TRAIN_PAGE)
    except StreamlitAPIException:  # this page runs on its own (not inside app.py's navigation)
        st.success("The Train page's form is filled with this data: open **Train** in the sidebar.")


def curate_section(source: str, size: int, pdata: data.PreparedData) -> None:
    state = st.session_state
    st.subheader("Curate")
    st.caption("Before training on a small set of your own pictures, look for near-duplicates, blurred or flat "
               "images and outliers, leave out what you do not want, and save the rest as a new source.")
    try:
        fp = data.fingerprint(source)
    except (data.DataError, OSError) as e:
        shared.show_error(e)
        return
    asked = state.setdefault("ds_curate_asked", set())
    akey = f"{fp}|{size}"
    if akey not in asked:
        if st.button("Analyse for curation", key="ds_curate", icon=":material/cleaning_services:"):
            asked.add(akey)
            st.rerun()  # drawn again without the button
        else:
            st.caption(f"Reads the {len(pdata):,} images once more: a perceptual hash of each, a sharpness and an "
                       "outlier score (a few seconds per thousand images).")
            return
    try:
        with st.spinner(f"Analysing {len(pdata):,} images (duplicates, sharpness, outliers)..."):
            cur = analyse_cached(source, size, fp)
    except (data.DataError, ValueError, OSError) as e:
        shared.show_error(e)
        return
    index = pixels_by_name(pdata)
    exclude_key = f"ds_cur_exclude|{akey}"

    # duplicates
    st.markdown(f"**Near-duplicate groups: {len(cur.duplicates):,}** (pHash within {cur.hash_distance} of 64 bits; "
                "each group keeps its sharpest image, the others are left out)")
    if not cur.duplicates:
        st.caption("No two images are the same picture.")
    for g in cur.duplicates[:GALLERY]:
        gallery(pdata, index, [(g.keep, f"kept: {g.keep}")]
                + [(n, f"dropped ({g.kind}, {g.distance[n]} bits): {n}") for n in g.drop[:GALLERY]])
        if len(g.drop) > GALLERY:
            st.caption(f"... and {len(g.drop) - GALLERY:,} more of this group of {len(g.drop) + 1:,}, farther ones last.")
    if len(cur.duplicates) > GALLERY:
        st.caption(f"... and {len(cur.duplicates) - GALLERY:,} more groups (all are applied).")
    keep_dups = st.checkbox("Keep the duplicates too", key="ds_cur_keep_dups")

    # sharpness
    c = st.columns(2)
    with c[0]:
        st.markdown("**Least sharp first** (variance of the Laplacian at the training size: low = blurred or flat)")
        top_sharp = max((s.score for s in cur.sharpness), default=0.0)
        below = st.slider("Leave out images less sharp than", 0.0, float(np.ceil(top_sharp)) or 1.0, 0.0,
                          key="ds_cur_sharp", help="0 leaves none out")
        gallery(pdata, index, [(s.name, f"sharpness {s.score:,.1f}: {s.name}") for s in cur.sharpness[:GALLERY]])
    with c[1]:
        st.markdown("**Outliers, farthest first** (a PCA of the pixels, 32×32 colour: about 1 is typical)")
        top_far = float(np.ceil(max((s.score for s in cur.outliers), default=1.0) * 10) / 10) + 0.1
        above = st.slider("Leave out images with an outlier score above", 0.0, top_far, top_far,
                          key="ds_cur_outlier", help="The right end leaves none out")
        gallery(pdata, index, [(s.name, f"outlier {s.score:.2f}: {s.name}") for s in cur.outliers[:GALLERY]])
    st.caption("Outliers are measured in a PCA of the set's own pixels, not in a shipped discriminator's "
               "features: a shipped discriminator knows only the faces it was trained on, so a set in a new style "
               "(the reason to fine-tune) would look far from it as a whole; the PCA of the set itself needs no "
               "checkpoint and flags the pictures unlike the rest of *this* set.")
    picked = st.multiselect("Leave out these images too", cur.names, key=exclude_key,
                            placeholder="Pick images by name")
    decisions = cur.decide(exclude=picked, sharpness_below=below if below > 0 else None,
                           outlier_above=above if above < top_far else None, keep_duplicates=keep_dups)
    reasons: dict[str, int] = {}
    for r in decisions.dropped.values():
        reasons[r] = reasons.get(r, 0) + 1
    st.metric("Images kept", f"{len(decisions.kept):,} of {len(cur.names):,}",
              help="Left out: " + (", ".join(f"{n} {r}" for r, n in sorted(reasons.items())) or "none"))
    if cur.unreadable:
        st.caption(f"{len(cur.unreadable):,} files could not be used (see the validation report) and are not saved.")
    if decisions.dropped:
        with st.expander(f"The {len(decisions.dropped):,} left out"):
            gallery(pdata, index, [(n, f"{r}: {n}") for n, r in list(decisions.dropped.items())[:GALLERY * 4]])
    name = st.text_input("Name of the curated set", key="ds_cur_name", placeholder="my-character",
                         help=f"Saved as a .zip in {paths.home() / CURATED_DIR}")
    if st.button("Save as a new source", key="ds_cur_save", type="primary", icon=":material/save:"):
        save_curated(cur, decisions, name, size)

    # hand-off
    st.markdown("**Make a generator of this**")
    bases = {p.name: p for p in shared.shipped_checkpoints()}
    if not bases:
        st.info(f"No shipped checkpoint in `{paths.SHIPPED_CHECKPOINTS}` to start from; train one on the "
                "Train page first, or restore the checkpoints folder.")
        return
    h = st.columns([3, 1], vertical_alignment="bottom")
    names = list(bases)
    base = h[0].selectbox("Start from", names, index=names.index(DEFAULT_BASE) if DEFAULT_BASE in names else 0,
                          key="ds_cur_base", help="A shipped generator that already draws faces")
    minutes = h[1].number_input("Minutes", 1, 24 * 60, DEFAULT_MINUTES, key="ds_cur_minutes",
                                help="The training's time budget")
    if st.button("Make a generator of this", key="ds_cur_make", icon=":material/auto_awesome:"):
        make_generator(source, size, bases[base], minutes)
    st.caption(f"Opens the Train page with the small-data recipe (`{SMALL_DATA_PRESET}`), this source (`{source}`), "
               f"{size} px, {base} as the start and a {minutes}-minute budget."
               + ("" if curate.is_curated(source) else " Save the curated set first to train on it."))


def to_hwc(img: np.ndarray, scale: int = 1) -> np.ndarray:
    a = np.ascontiguousarray(np.asarray(img).transpose(1, 2, 0))
    if scale > 1:
        a = a.repeat(scale, axis=0).repeat(scale, axis=1)
    return a


def grid_png(images: np.ndarray, cols: int = 8, scale: int = 2) -> bytes:
    import torch

    from animegan.images import png_bytes, to_grid, upscale
    return png_bytes(upscale(to_grid(torch.as_tensor(np.asarray(images)), cols=cols, padding=2), scale))


def show_report(pdata: data.PreparedData) -> None:
    rep = pdata.report
    # A row that wraps where it is narrow (the sidebar open at 800 px), each metric as wide as its
    # label: five columns there left "Exact duplicates" 70 px.
    with st.container(horizontal=True, gap="medium"):
        st.metric("Image files", f"{rep.total:,}", width="content")
        st.metric("Usable", f"{rep.usable:,}", width="content")
        st.metric("Skipped", f"{rep.n_skipped:,}", width="content")
        st.metric("Exact duplicates", f"{len(rep.duplicates):,}", help="Same bytes: kept once.", width="content")
        st.metric("Other files ignored", f"{rep.ignored_other:,}", help="Files without an image extension.",
                  width="content")
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


HISTOGRAMS = (("As stored: uint8, 0..255", (0, 256)), ("Normalised to [-1, 1] (G's tanh, D's input)", (-1.0, 1.0)))


def histogram_charts(sample: np.ndarray, bins: int = 64) -> list[dict]:
    """The same pixels twice, as Vega-Lite specs (one per HISTOGRAMS entry): as stored (uint8) and
    as the networks see them (data.to_float); one overlaid, translucent bar series per channel."""
    import torch
    colors = {"R": "#e45756", "G": "#54a24b", "B": "#4c78a8"}
    norm = data.to_float(torch.as_tensor(sample)).numpy()
    charts = []
    for pixels, (title, rng) in zip((sample, norm), HISTOGRAMS, strict=True):
        values = []
        for ch, name in enumerate("RGB"):
            h, e = np.histogram(pixels[:, ch], bins=bins, range=rng)
            values += [{"channel": name, "from": float(a), "to": float(b), "pixels": int(c)}
                       for a, b, c in zip(e[:-1], e[1:], h, strict=True)]
        charts.append({"data": {"values": values}, "height": 320, "title": {"text": title, "anchor": "start"},
                       "mark": {"type": "rect", "opacity": 0.6, "tooltip": True},
                       "encoding": {
                           "x": {"field": "from", "type": "quantitative", "title": "pixel value",
                                 "scale": {"domain": [rng[0], rng[1] if rng[1] <= 1 else 255]}},
                           "x2": {"field": "to"},
                           "y": {"field": "pixels", "type": "quantitative", "title": "pixels", "stack": None},
                           "color": {"field": "channel", "type": "nominal", "title": None,
                                     "scale": {"domain": list(colors), "range": list(colors.values())}}}})
    return charts


# =========================================================================== page
shared.narrow_window_layout()
st.title("Dataset")
st.caption("A source is prepared once: every image is read, checked, converted to RGB, center-cropped and "
           "resized, and kept in a cache. What cannot be used is skipped and reported here — never silently.")

if NEW_SOURCE in st.session_state:  # a curated set just saved: it is the source now
    st.session_state["ds_kind"] = "folder"
    st.session_state["ds_folder"] = st.session_state.pop(NEW_SOURCE)
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
curate_section(source, size, pdata)

# --------------------------------------------------------------------------- browse
st.subheader("Browse")
N = len(pdata)
n_pages = max(1, -(-N // PAGE_SIZE))
# One row that wraps where it is narrow (the sidebar open at 800 px), not four columns that cut "Shuffle".
with st.container(horizontal=True, vertical_alignment="bottom"):
    shuffle = st.toggle("Shuffle", key="ds_shuffle", width="content")
    shuffle_seed = int(st.number_input("Shuffle seed", 0, 2**31 - 1, 0, key="ds_shuffle_seed", disabled=not shuffle,
                                       width=170))
    page = int(st.number_input(f"Page (of {n_pages:,})", 1, n_pages, 1, key="ds_page", width=150))
order = np.random.default_rng(shuffle_seed).permutation(N) if shuffle else np.arange(N)
on_page = order[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
if on_page.size == 0:
    on_page = order[:PAGE_SIZE]
batch = np.asarray(pdata.images[on_page])
st.caption(f"Images {(page - 1) * PAGE_SIZE + 1:,}–{(page - 1) * PAGE_SIZE + len(on_page):,} of {N:,}"
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
for col, chart, (title, _) in zip(st.columns(2), histogram_charts(hist_sample), HISTOGRAMS, strict=True):
    col.vega_lite_chart(chart, width="stretch", alt=f"Histogram of pixel values, {title}")
st.caption(f"{len(hist_sample):,} images, every pixel of every channel. Normalisation x/127.5 − 1 maps 0..255 onto "
           "[-1, 1], the range of the generator's tanh output.")
