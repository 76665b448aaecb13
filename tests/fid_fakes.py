"""Stand-ins for the FID Inception weights, for tests and benchmarks (not part of the package).

The real file (pt_inception-2015-12-05-6726825d.pth) is a download the tests must not need;
`random_inception_state_dict` has exactly its keys and shapes, with random values: the same
network and the same compute, meaningless FID values.

    import sys; sys.path.insert(0, "<repo>/tests")   # pytest does this for test modules
    from fid_fakes import random_inception_state_dict
"""
from __future__ import annotations

import pytorch_fid.inception as pfi
import torch
import torchvision


def random_inception_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """The FID Inception state dict's keys and shapes, built the way
    `pytorch_fid.inception.fid_inception_v3` builds the network (independently of
    `animegan.metrics`, so loading it there checks the package builds the same network),
    filled with random values: He-scaled convolutions and BatchNorm near identity, so the
    activations stay O(1) through all the blocks."""
    net = torchvision.models.inception_v3(num_classes=1008, aux_logits=False, init_weights=False, weights=None)
    net.Mixed_5b = pfi.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = pfi.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = pfi.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = pfi.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = pfi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = pfi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = pfi.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = pfi.FIDInceptionE_1(1280)
    net.Mixed_7c = pfi.FIDInceptionE_2(2048)
    sd = net.state_dict()
    g = torch.Generator().manual_seed(seed)
    for k, v in sd.items():
        if not v.dtype.is_floating_point:
            continue
        if k.endswith("conv.weight"):
            v.copy_(torch.randn(v.shape, generator=g) * (2.0 / v[0].numel()) ** 0.5)
        elif k.endswith(("bn.weight", "running_var")):
            v.copy_(1 + 0.1 * torch.rand(v.shape, generator=g))
        else:
            v.copy_(0.1 * torch.randn(v.shape, generator=g))
    return sd


def pytorch_fid_inception(state_dict: dict[str, torch.Tensor]) -> pfi.InceptionV3:
    """pytorch-fid's own `InceptionV3` as FID uses it, filled with `state_dict` instead of its
    download (pytorch-fid offers no other way in: its download function is patched, in test
    code only). The reference `animegan.metrics.FIDInceptionV3` is checked against."""
    from unittest import mock

    with mock.patch.object(pfi, "load_state_dict_from_url", lambda *a, **k: state_dict):
        return pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]], resize_input=True,
                               normalize_input=True, requires_grad=False, use_fid_inception=True).eval()
