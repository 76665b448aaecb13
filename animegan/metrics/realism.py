"""A realism judge: can a small CNN tell generated faces from real ones? (A classifier two-sample
test, Lopez-Paz & Oquab 2017, "Revisiting classifier two-sample tests".)

SWD compares patch statistics and can miss what the eye sees (smeared eyes, wrong anatomy). The
judge asks a different question: train a small convolutional network on half of the generated and
half of the real faces to label them, then count how often it is right on the other halves, which
it never saw. **The result is that held-out accuracy**: 0.5 means the judge cannot tell the sets
apart (what two sets of real faces score), 1.0 means it always can. Lower is better for a generator.

Recipe (fixed, so numbers compare): n generated and n real images of one size (the checkpoint's
native size); each class split by a seeded permutation into a training half (n // 2) and a
held-out half (the rest); `Judge` (four stride-2 3×3 convolutions 3→16→32→64→128 with LeakyReLU,
pooled to 4×4, one linear logit: 99k parameters at any size); Adam (lr 1e-3), batch 64, random
horizontal flips, `EPOCHS` epochs, binary cross-entropy; then the accuracy on the held-out halves
(classes balanced, so chance is 0.5). All randomness (the halves, the network's initialisation,
the batch order, the flips) comes from `seed`; the computation runs with a fixed number of CPU
threads (`threads`, 1 by default), so the same inputs and seed give the same number, bit for bit.

Cost, measured at n=2000 with one thread on the development machine (a 2-core AMD EPYC shared
with three training runs, load average 5-10): the judge itself (10 epochs over 2,000 images, then
4,000 judged) 15-27 s at 64 px and 47-54 s at 96 px; the whole `realism` verb (start-up, the
cached data, 2,000 generated faces, the judge) 21-41 s wall, 18-21 s of CPU at 64 px, 74 s wall,
36 s of CPU at 96 px. Memory: the 4,000 images as float32, 200 MB at 64 px, 440 MB at 96 px.

Reading the number: at n=2000 (1000 held-out images per class) the accuracy of two truly
indistinguishable sets lies within about ±0.03 of 0.5 (three standard deviations of a coin over
2,000 guesses); the shipped data's test split against its val split scores 0.4985 at 64 px and
0.515 at 96 px. A judge is a lower bound on how distinguishable the sets are (a stronger judge
could only do better), so a generator's accuracy falling over training means the judge found
fewer tells, not that none are left. Every shipped checkpoint scores 0.995 or more (see
checkpoints/README.md): at that end `loss` (held-out cross-entropy) still differs between them.

`realism_accuracy` judges two image sets; `realism_on_split` judges a generator against a split of
prepared data (as `evaluation.evaluate_on_split` does for SWD: images 0..n-1 of `seed`, drawn as
the `swd` verb draws them, against the split's first n images); `checkpoint_realism` is what the
`realism` verb runs.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.sources import DataError

EPOCHS = 10  # held-out accuracy on anime64 (n=2000) settles by epoch 6 (0.994) and stays within 0.005
BATCH = 64
LR = 1e-3
WIDTH = 16
POOL = 4


@dataclass
class RealismResult:
    """One judgement. `accuracy` is the held-out accuracy (0.5 indistinguishable, 1.0 always told
    apart); `n` images per class (generated and real) of `size` px, `n_train` of them per class
    trained the judge and `n_test` were held out; `train_accuracy` is its accuracy on the
    training halves (above `accuracy` where it memorised), `loss` its mean binary cross-entropy
    on the held-out halves in nats (ln 2 = 0.693 is a coin; below it the judge is right and sure,
    so it still moves where `accuracy` sits at 1.0, though it also depends on how overconfident
    the judge grew). `seconds` is the time it took, the one field that differs between two
    identical calls."""

    accuracy: float
    n: int
    n_train: int
    n_test: int
    epochs: int
    size: int
    seed: int
    train_accuracy: float
    loss: float
    split: str | None = None
    reference: str = ""
    seconds: float = 0.0
    metric: str = "realism"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Judge(nn.Module):
    """The classifier: four stride-2 3×3 convolutions (width w, 2w, 4w, 8w) with LeakyReLU(0.2),
    adaptive average pooling to POOL×POOL, one linear logit (positive: generated)."""

    def __init__(self, width: int = WIDTH, pool: int = POOL):
        super().__init__()
        chans = [3, width, 2 * width, 4 * width, 8 * width]
        layers: list[nn.Module] = []
        for cin, cout in zip(chans[:-1], chans[1:], strict=True):
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(pool))
        self.head = nn.Linear(chans[-1] * pool * pool, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1)).squeeze(1)


def _images(x: Any, what: str) -> torch.Tensor:
    """(N, 3, S, S) uint8 (0..255) or float ([-1, 1], the generators' range) -> float32 [-1, 1]."""
    if not isinstance(x, torch.Tensor):
        a = np.ascontiguousarray(x)
        x = torch.from_numpy(a if a.flags.writeable else a.copy())
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"the {what} images must be (N, 3, H, W), got {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        return x.float().div_(127.5).sub_(1.0)
    if not x.is_floating_point():
        raise TypeError(f"the {what} images must be uint8 or float in [-1, 1], got {x.dtype}")
    return x.float()


@contextmanager
def _threads(n: int | None):
    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _judged(net: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device, batch: int = 500
            ) -> tuple[float, float]:
    """(accuracy, mean binary cross-entropy in nats) of the judge on labelled images."""
    net.eval()
    right, loss = 0, 0.0
    with torch.inference_mode():
        for b in range(0, len(x), batch):
            logits = net(x[b:b + batch].to(device)).float().cpu()
            right += int(((logits > 0).float() == y[b:b + batch]).sum())
            loss += float(F.binary_cross_entropy_with_logits(logits, y[b:b + batch], reduction="sum"))
    return right / len(x), loss / len(x)


def realism_accuracy(fake: Any, real: Any, *, seed: int = 0, epochs: int = EPOCHS, threads: int | None = 1,
                     device: str | torch.device = "cpu", split: str | None = None, reference: str = "",
                     progress: Callable[[int, int], object] | None = None) -> RealismResult:
    """Judge `fake` against `real`: equal-size sets (N, 3, S, S) of uint8 or [-1, 1] float images.
    Each set's seeded half trains a fresh `Judge` for `epochs` epochs; the result's `accuracy` is
    its accuracy on the other halves. Same inputs, seed and threads -> the same number (CPU).
    `progress(epoch, epochs)` after every epoch. ValueError for sets of unequal size or shape or
    of fewer than 2 images."""
    fake_t, real_t = _images(fake, "generated"), _images(real, "real")
    if fake_t.shape[1:] != real_t.shape[1:]:
        raise ValueError(f"the judge needs images of one shape: generated {tuple(fake_t.shape[1:])}, "
                         f"real {tuple(real_t.shape[1:])}")
    if len(fake_t) != len(real_t):
        raise ValueError(f"the judge compares equal-size sets: {len(fake_t)} generated vs {len(real_t)} real")
    n = len(fake_t)
    if n < 2:
        raise ValueError(f"the judge needs at least 2 images per set (one to train on, one held out), got {n}")
    epochs = int(epochs)
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if threads is not None and int(threads) < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    dev = torch.device(device)
    t0 = time.perf_counter()
    g = torch.Generator().manual_seed(int(seed))
    n_train = n // 2
    pf, pr = torch.randperm(n, generator=g), torch.randperm(n, generator=g)
    x_train = torch.cat([fake_t[pf[:n_train]], real_t[pr[:n_train]]])
    y_train = torch.cat([torch.ones(n_train), torch.zeros(n_train)])
    x_test = torch.cat([fake_t[pf[n_train:]], real_t[pr[n_train:]]])
    y_test = torch.cat([torch.ones(n - n_train), torch.zeros(n - n_train)])
    with _threads(threads if dev.type == "cpu" else None):
        with torch.random.fork_rng(devices=[]):  # the initialisation from `seed`; the caller's RNG untouched
            torch.default_generator.manual_seed(int(seed))
            net = Judge().to(dev)
        opt = torch.optim.Adam(net.parameters(), lr=LR)
        if progress is not None:
            progress(0, epochs)
        for epoch in range(epochs):
            net.train()
            order = torch.randperm(len(x_train), generator=g)
            flips = torch.rand(len(x_train), generator=g) < 0.5
            for b in range(0, len(order), BATCH):
                idx = order[b:b + BATCH]
                xb = x_train[idx]
                f = flips[b:b + BATCH]
                xb[f] = xb[f].flip(-1)
                bce = F.binary_cross_entropy_with_logits(net(xb.to(dev)), y_train[idx].to(dev))
                opt.zero_grad(set_to_none=True)
                bce.backward()
                opt.step()
            if progress is not None:
                progress(epoch + 1, epochs)
        acc, loss = _judged(net, x_test, y_test, dev)
        train_acc, _ = _judged(net, x_train, y_train, dev)
    return RealismResult(accuracy=acc, n=n, n_train=n_train, n_test=n - n_train, epochs=epochs,
                         size=int(fake_t.shape[-1]), seed=int(seed), train_accuracy=train_acc, loss=loss, split=split,
                         reference=reference, seconds=round(time.perf_counter() - t0, 1))


def realism_on_split(G: nn.Module, data, split: str, *, n: int, seed: int = 0, epochs: int = EPOCHS,
                     threads: int | None = 1, device: str | torch.device = "cpu",
                     progress: Callable[[int, int], object] | None = None) -> RealismResult:
    """Judge G against `data`'s `split` as the `swd` verb measures it (`evaluation.evaluate_on_split`):
    the split's first n images (n capped at its size; ValueError below 2) against images 0..n-1 of
    `seed` (`generate.image_batches`, batches of 250), at the data's size, which must be G's."""
    from ..generate import image_batches
    from .evaluation import reference_label

    real = data.split_images(split)
    n = min(int(n), len(real))
    if n < 2:
        raise DataError(f"the {split} split has {len(real)} images; at least 2 are needed to evaluate")
    g_size = int(getattr(G, "img_size", data.size))
    if g_size != int(data.size):
        raise DataError(f"the judge compares images of one size: generator draws {g_size}px, "
                         f"real images are {data.size}px")
    with _threads(threads if torch.device(device).type == "cpu" else None):
        fake = torch.cat(list(image_batches(G, n, seed, batch_size=250, device=device)))
    return realism_accuracy(fake, real[:n], seed=seed, epochs=epochs, threads=threads, device=device, split=split,
                            reference=reference_label(data.source, data.fingerprint, data.size, split),
                            progress=progress)


def checkpoint_realism(checkpoint: str | Path, source: str | None = None, split: str = "val", *, n: int = 2000,
                       seed: int = 0, epochs: int = EPOCHS, threads: int | None = 1,
                       device: str | torch.device = "cpu", data_progress: bool | Callable[[int, int], object] = False,
                       progress: Callable[[int, int], object] | None = None) -> RealismResult:
    """The `realism` verb: a checkpoint's generator judged against the split it held out of
    `source` (default: the data it trained on), prepared at its size and split as its training
    split it (`evaluation.checkpoint_data`, as `swd` does). CheckpointError / DataError /
    ValueError carry messages for the user."""
    from ..checkpoint import load_generator
    from .evaluation import checkpoint_data

    loaded = load_generator(checkpoint, device=device)
    data = checkpoint_data(loaded.config, source, progress=data_progress)
    return realism_on_split(loaded.G, data, split, n=n, seed=seed, epochs=epochs, threads=threads, device=device,
                            progress=progress)
