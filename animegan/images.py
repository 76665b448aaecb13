"""Images in and out: uint8 tensors as PIL images, grids, PNG bytes, folders and zips of PNGs, and
animated GIFs; the file names of what is written. Every picture the package or a page encodes is
encoded here (the sampling is in generate.py).
"""
from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from PIL import Image


def uint8_batch(images: Any) -> torch.Tensor:
    """uint8 images (N, 3, H, W), or one image (3, H, W), as a CPU tensor (N, 3, H, W); an array
    is taken as it is (a read-only memory map is copied: torch wants writable memory)."""
    if not isinstance(images, torch.Tensor):
        a = np.ascontiguousarray(images)
        images = torch.from_numpy(a if a.flags.writeable else a.copy())
    if images.dtype != torch.uint8:
        raise TypeError(f"expected uint8 images, got {images.dtype}")
    if images.dim() == 3:
        images = images[None]
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"expected (N, 3, H, W) images, got {tuple(images.shape)}")
    return images.cpu()


def to_pil(image: torch.Tensor) -> Image.Image:
    """One uint8 (3, H, W) tensor → RGB PIL image."""
    image = uint8_batch(image)[0]
    return Image.fromarray(image.permute(1, 2, 0).contiguous().numpy())


def upscale(image: Image.Image | torch.Tensor, factor: int, smooth: bool = False) -> Image.Image | torch.Tensor:
    """Enlargement for display: nearest neighbour (pixels stay crisp) or, with `smooth`, Lanczos
    (PIL only). PIL in → PIL out; a uint8 tensor (…, H, W) in → tensor out (nearest)."""
    factor = int(factor)
    if factor < 1:
        raise ValueError("factor must be >= 1")
    if factor == 1:
        return image
    if isinstance(image, Image.Image):
        size = (image.width * factor, image.height * factor)
        return image.resize(size, Image.Resampling.LANCZOS if smooth else Image.Resampling.NEAREST)
    return image.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)


_upscale = upscale  # `to_gif` has a parameter of the same name


def to_grid(images: torch.Tensor, cols: int = 8, padding: int = 2, pad_value: int = 0) -> Image.Image:
    """A grid of uint8 images, `cols` per row (torchvision's make_grid), as a PIL image."""
    from torchvision.utils import make_grid

    images = uint8_batch(images)
    if len(images) == 0:
        raise ValueError("no images to put in a grid")
    grid = make_grid(images, nrow=max(1, int(cols)), padding=int(padding), pad_value=pad_value)
    return Image.fromarray(grid.permute(1, 2, 0).contiguous().numpy())


GRID_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")


def format_for_path(path: str | Path) -> str:
    """The output format an --out path asks for: "zip" for .zip, "grid" for an image file name,
    "pngs" (a folder of PNGs) for anything else."""
    suffix = Path(path).suffix.lower()
    return "zip" if suffix == ".zip" else "grid" if suffix in GRID_SUFFIXES else "pngs"


def save_grid(
    images: torch.Tensor, path: str | Path, cols: int = 8, padding: int = 2, scale: int = 1
) -> Path:
    """Write the grid to `path` (format from the suffix, PNG recommended); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    upscale(to_grid(images, cols=cols, padding=padding), scale).save(path)
    return path


def png_name(seed: int, index: int) -> str:
    return f"seed{int(seed)}_{int(index):05d}.png"


def grid_name(seed: int, ext: str = "png") -> str:
    """The file name of seed's grid ("seed7_grid.png"); ext "zip" names the zip of its faces."""
    return f"seed{int(seed)}_{'faces' if ext == 'zip' else 'grid'}.{ext}"


def interpolation_name(seed_a: int, seed_b: int, ext: str = "gif") -> str:
    return f"seed{int(seed_a)}_to_{int(seed_b)}.{ext}"


def png_bytes(image: Image.Image | torch.Tensor) -> bytes:
    """A PIL image or one uint8 (3, H, W) tensor as PNG bytes (for display and downloads)."""
    img = image if isinstance(image, Image.Image) else to_pil(image)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _check_indices(images: torch.Tensor, indices: Sequence[int]) -> list[int]:
    indices = [int(i) for i in indices]
    if len(indices) != len(images):
        raise ValueError(f"{len(images)} images but {len(indices)} indices")
    return indices


def save_pngs(images: torch.Tensor, out_dir: str | Path, seed: int, indices: Sequence[int]) -> list[Path]:
    """One PNG per image, named `seed{seed}_{index:05d}.png`; returns the paths."""
    images = uint8_batch(images)
    indices = _check_indices(images, indices)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for img, i in zip(images, indices, strict=True):
        p = out / png_name(seed, i)
        p.write_bytes(png_bytes(img))
        paths.append(p)
    return paths


def to_zip(images: torch.Tensor, seed: int, indices: Sequence[int]) -> bytes:
    """The same PNGs as `save_pngs`, in a zip archive held in memory (for a download button)."""
    images = uint8_batch(images)
    indices = _check_indices(images, indices)
    buf = io.BytesIO()
    # PNG is already compressed: store, don't deflate again
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for img, i in zip(images, indices, strict=True):
            zf.writestr(png_name(seed, i), png_bytes(img))
    return buf.getvalue()


def gif_frame_order(steps: int) -> list[int]:
    """There and back: 0, 1, …, steps-1, steps-2, …, 1 → 2·steps − 2 frames (steps ≥ 2);
    played in a loop it returns to frame 0 without showing either end twice."""
    steps = int(steps)
    if steps <= 1:
        return list(range(steps))
    return list(range(steps)) + list(range(steps - 2, 0, -1))


def to_gif(frames: torch.Tensor, path_or_buffer: str | Path | BinaryIO, fps: float = 12, upscale: int = 1) -> None:
    """Animated GIF (Pillow), looping forever, there and back (see `gif_frame_order`:
    2·steps − 2 frames for steps ≥ 2)."""
    frames = uint8_batch(frames)
    if len(frames) == 0:
        raise ValueError("no frames")
    factor = int(upscale)
    pics = [_upscale(to_pil(frames[k]), factor) for k in gif_frame_order(len(frames))]
    save_gif(pics, path_or_buffer, max(20, int(round(1000.0 / float(fps)))))  # ms; GIF stores centiseconds


def save_gif(pics: Sequence[Image.Image], out: str | Path | BinaryIO, durations: int | list[int]) -> None:
    """Frames as an animated GIF, looping forever, each shown `durations` ms (one number, or one per
    frame); a path's folder is made."""
    if isinstance(out, (str, Path)):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
    pics[0].save(out, format="GIF", save_all=True, append_images=list(pics[1:]), duration=durations, loop=0,
                 disposal=1, optimize=False)
