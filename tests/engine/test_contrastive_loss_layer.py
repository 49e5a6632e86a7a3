"""ContrastiveLoss: a port of src/caffe/test/test_contrastive_loss_layer.cpp."""

import pytest
import torch
from layer_testing import check_gradients, make_layer, run_forward

from reference_engine.checks import CaffeError


def pairs(num=6, channels=3, seed=1701):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn((num, channels, 1, 1), generator=g, dtype=torch.float64) * 0.6
    b = torch.randn((num, channels, 1, 1), generator=g, dtype=torch.float64) * 0.6
    y = (torch.rand((num, 1, 1, 1), generator=g) > 0.5).to(torch.float64)
    y[0], y[1] = 0.0, 1.0  # both kinds present
    return a, b, y


def expected_loss(a, b, y, margin, legacy):
    d2 = ((a - b) ** 2).reshape(a.shape[0], -1).sum(1)
    if legacy:
        dissimilar = torch.clamp_min(margin - d2, 0)
    else:
        dissimilar = torch.clamp_min(margin - d2.sqrt(), 0) ** 2
    return torch.where(y.reshape(-1) != 0, d2, dissimilar).sum() / a.shape[0] / 2


@pytest.mark.parametrize("margin", [None, 2.0])
@pytest.mark.parametrize("legacy", [False, True])
def test_forward_and_gradient(margin, legacy):
    a, b, y = pairs()
    param = [] if margin is None else [f"margin: {margin}"]
    param += ["legacy_version: true"] if legacy else []
    proto = 'type: "ContrastiveLoss"' + (f" contrastive_loss_param {{ {' '.join(param)} }}" if param else "")
    layer, bottom, top = make_layer(proto, [a, b, y])
    (loss,) = run_forward(layer, bottom, top)
    torch.testing.assert_close(
        loss, expected_loss(a, b, y, 1.0 if margin is None else margin, legacy), rtol=1e-14, atol=0
    )
    # Caffe's checker skips bottom 2 (the similarity); so do we, and so does force_backward.
    check_gradients(layer, bottom, top, check_bottom=[0, 1])
    assert layer.allow_force_backward(1) and not layer.allow_force_backward(2)


def test_shapes_are_checked_in_setup():
    a, b, y = pairs()
    with pytest.raises(CaffeError, match=r"^Check failed: bottom\[0\]->height\(\) == 1 \(2 vs\. 1\) $"):
        make_layer('type: "ContrastiveLoss"', [a.reshape(6, 3, 1).expand(6, 3, 2), b, y])
