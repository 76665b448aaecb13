"""How good are a generator's faces? Each thing is imported from the module that defines it:

- `fid`: FID (pytorch-fid's Inception network and Fréchet formula), its weights file and the
  cached real-set statistics.
- `swd`: multi-scale sliced Wasserstein distance (needs no download).
- `realism`: the realism judge, a small CNN's held-out accuracy at telling fakes from reals (C2ST).
- `evaluation`: a generator measured against real images or a data split (`evaluate`,
  `evaluate_on_split`), what it was measured against (`reference_label`), `checkpoint_data`.
- `result`: `MetricResult`, the one measurement FID and SWD return.
"""
