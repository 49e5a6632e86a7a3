"""Caffe's weight fillers, for params a case does not provide.

Caffe: include/caffe/filler.hpp. The harness gives every param's initial data
explicitly (so Caffe's RNG and ours never have to agree); fillers only make a
net runnable on its own (``explain``, tests of one layer).
"""

import math

import torch

from .checks import check, fatal


def fill(blob, filler, generator: torch.Generator | None = None):
    """Fill ``blob.data`` as the FillerParameter ``filler`` says."""
    data = blob.data
    kind = filler.type
    if kind == "constant":
        data.fill_(filler.value)
    elif kind == "uniform":
        data.copy_(
            torch.rand(data.shape, generator=generator, dtype=torch.float64) * (filler.max - filler.min)
            + filler.min
        )
    elif kind == "gaussian":
        data.copy_(
            torch.randn(data.shape, generator=generator, dtype=torch.float64) * filler.std + filler.mean
        )
    elif kind in ("xavier", "msra"):
        scale = _fan_scale(blob, filler)
        if kind == "xavier":
            bound = math.sqrt(3.0 / scale)
            data.copy_((torch.rand(data.shape, generator=generator, dtype=torch.float64) * 2 - 1) * bound)
        else:
            data.copy_(
                torch.randn(data.shape, generator=generator, dtype=torch.float64) * math.sqrt(2.0 / scale)
            )
    elif kind == "positive_unitball":
        values = torch.rand(data.shape, generator=generator, dtype=torch.float64).reshape(data.shape[0], -1)
        data.copy_((values / values.sum(1, keepdim=True)).reshape(data.shape))
    elif kind == "bilinear":
        check(blob.num_axes == 4, "blob->num_axes() == 4", "Blob must be 4 dim.")
        check(blob.shape[-1] == blob.shape[-2], "blob->width() == blob->height()", "Filter must be square")
        k = blob.shape[-1]
        f = math.ceil(k / 2.0)
        c = (2 * f - 1 - f % 2) / (2.0 * f)
        ramp = torch.tensor([1 - abs(i / f - c) for i in range(k)], dtype=torch.float64)
        data.copy_((ramp[:, None] * ramp[None, :]).expand(data.shape))
    else:
        fatal(f"Unknown filler name: {kind}")


def _fan_scale(blob, filler) -> float:
    """XavierFiller / MSRAFiller: fan_in = count/shape[0], fan_out = count/shape[1]."""
    fan_in = blob.count() / blob.shape[0]
    fan_out = blob.count() / blob.shape[1] if blob.num_axes > 1 else blob.count()
    norm = filler.variance_norm
    # VarianceNorm: FAN_IN = 0, FAN_OUT = 1, AVERAGE = 2 (caffe.proto FillerParameter).
    if norm == 2:
        return (fan_in + fan_out) / 2.0
    if norm == 1:
        return fan_out
    return fan_in
