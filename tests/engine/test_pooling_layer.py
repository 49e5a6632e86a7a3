"""Pooling: Caffe's output-size rounding, tie-breaking, AVE divisors, gradients.

Follows src/caffe/test/test_pooling_layer.cpp (TestForwardMax, TestGradientMax, TestForwardAve ...)."""

import pytest
import torch
from layer_testing import check_gradients, make_layer, run_forward

from reference_engine.checks import CaffeError, Unsupported
from reference_engine.layers.pooling import FLT_MAX, PoolingLayer
from reference_engine.semantics import CAFFE_1_0


def pool(body):
    return f'type: "Pooling" pooling_param {{ {body} }}'


def distinct(shape, seed=0):
    """Values spaced 1 apart in random order: no ties, no kinks within a finite-difference step."""
    n = 1
    for d in shape:
        n *= d
    return (
        torch.randperm(n, generator=torch.Generator().manual_seed(seed)).to(torch.float64).view(shape) * 0.1
    )


@pytest.mark.parametrize(
    "body,size",
    [
        (
            "pool: AVE kernel_size: 2 stride: 2 pad: 1",
            [2, 2],
        ),  # ceil gives 3, clipped to 2 (§9 ex11)
        ("pool: MAX kernel_size: 2 stride: 2", [2, 2]),  # ceil((3-2)/2)+1 = 2, no clipping
        ("pool: MAX kernel_size: 2 stride: 2 round_mode: FLOOR", [1, 1]),
        ("pool: MAX kernel_h: 3 kernel_w: 1 stride_h: 1 stride_w: 2", [1, 2]),
    ],
)
def test_output_size(body, size):
    _, _, top = make_layer(pool(body), [torch.zeros(1, 1, 3, 3)])
    assert top[0].shape == [1, 1] + size


def test_round_mode_is_ignored_by_caffe_1_0():
    from google.protobuf import text_format
    from layer_testing import PHASES

    from reference_engine import caffe_pb2
    from reference_engine.blob import Blob
    from reference_engine.layers.pooling import PoolingLayer

    param = text_format.Parse(
        pool("pool: MAX kernel_size: 2 stride: 2 round_mode: FLOOR"), caffe_pb2.LayerParameter()
    )
    layer = PoolingLayer(param, PHASES["TRAIN"], torch.float64, "cpu", semantics=CAFFE_1_0)
    bottom, top = [Blob([1, 1, 3, 3], dtype=torch.float64)], [Blob([], dtype=torch.float64)]
    layer.setup(bottom, top)
    assert top[0].shape == [1, 1, 2, 2]


def test_max_forward_first_maximum_wins_and_mask():
    x = torch.tensor([[[[1.0, 5.0, 5.0], [5.0, 2.0, 0.0], [3.0, 3.0, 3.0]]]], dtype=torch.float64)
    layer, bottom, top = make_layer(pool("pool: MAX kernel_size: 2 stride: 1"), [x], num_tops=2)
    y, mask = run_forward(layer, bottom, top)
    assert y.view(-1).tolist() == [5.0, 5.0, 5.0, 3.0]
    assert mask.view(-1).tolist() == [1.0, 1.0, 3.0, 7.0]  # the first 5 in raster order; 3 at (2,1)
    top[0].diff.copy_(torch.tensor([1.0, 2.0, 4.0, 8.0]).view(1, 1, 2, 2))
    layer.backward(top, [True], bottom)
    assert bottom[0].diff.view(-1).tolist() == [0, 3, 0, 4, 0, 0, 0, 8, 0]


# (kernel, stride, pad) per axis and the round mode: overlapping and gapped windows, pad up to
# kernel / 2, ceil windows that hang past the image, non-square. Each has torch's layout.
TORCH_LAYOUTS = [
    "kernel_size: 3 stride: 2",
    "kernel_size: 3 stride: 1 pad: 1",
    "kernel_size: 2 stride: 2 pad: 1",
    "kernel_size: 3 stride: 2 pad: 1 round_mode: FLOOR",
    "kernel_h: 2 kernel_w: 3 stride: 3",
    "kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 1",
    "kernel_size: 4 stride: 3 pad: 2",
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("body", TORCH_LAYOUTS)
def test_max_torch_path_is_the_offset_loop_on_ties(body, dtype, monkeypatch):
    """torch's max_pool2d gives Caffe's top, mask and bottom diff to the bit, ties included:
    values drawn from five levels tie inside most windows."""
    x = torch.randint(-2, 3, (2, 3, 7, 6), generator=torch.Generator().manual_seed(3)).to(dtype)
    dy = None
    results = []
    for torch_path in (True, False):
        if not torch_path:
            monkeypatch.setattr(PoolingLayer, "_torch_max_pool_agrees", lambda self, x: False)
        layer, bottom, top = make_layer(pool("pool: MAX " + body), [x], num_tops=2, dtype=dtype)
        if torch_path:
            assert layer.torch_ceil_mode is not None, "torch cannot lay out these windows"
        y, mask = run_forward(layer, bottom, top)
        if dy is None:
            dy = torch.randn(y.shape, generator=torch.Generator().manual_seed(4), dtype=dtype)
        top[0].diff.copy_(dy)
        layer.backward(top, [True], bottom)
        results.append((y, mask, bottom[0].diff.clone()))
    for name, fast, loop in zip(("top", "mask", "bottom diff"), *results):
        assert torch.equal(fast, loop), name


@pytest.mark.parametrize("body", ["kernel_size: 3 stride: 1 pad: 2", "kernel_size: 1 stride: 3"])
def test_max_layouts_torch_cannot_take_use_the_offset_loop(body):
    """pad > kernel / 2 (torch refuses it), and a last window that starts past the image
    (no pad, kernel < stride: Caffe's ceil keeps it, torch's drops it)."""
    x = distinct([1, 2, 5, 5])
    layer, bottom, top = make_layer(pool("pool: MAX " + body), [x], num_tops=2)
    assert layer.torch_ceil_mode is None
    y, mask = run_forward(layer, bottom, top)
    if "pad" not in body:
        # Windows start at 0, 3, 6: the last lies outside the 5x5 image, so it keeps -FLT_MAX, -1.
        assert y.shape == (1, 2, 3, 3)
        assert bool((y[:, :, 2, :] == -FLT_MAX).all()) and bool((mask[:, :, 2, :] == -1).all())
        assert torch.equal(y[:, :, :2, :2], x[:, :, ::3, ::3])


def test_max_nan_and_values_at_or_below_minus_flt_max_never_win():
    """Caffe starts each window at -FLT_MAX with mask -1 and compares with '>': NaN, -inf and
    -FLT_MAX itself never win, and a window of nothing else keeps -FLT_MAX and mask -1."""
    inf, nan = float("inf"), float("nan")
    x = torch.tensor(
        [[[[nan, 1.0, -inf, -inf], [nan, nan, -inf, -FLT_MAX], [2.0, -1e300, 0.5, -1e300]]]],
        dtype=torch.float64,
    )
    layer, bottom, top = make_layer(pool("pool: MAX kernel_size: 2 stride: 2"), [x], num_tops=2)
    y, mask = run_forward(layer, bottom, top)
    assert y.view(-1).tolist() == [1.0, -FLT_MAX, 2.0, 0.5]
    assert mask.view(-1).tolist() == [1.0, -1.0, 8.0, 10.0]


def test_max_padding_never_wins():
    x = -torch.ones(1, 1, 2, 2, dtype=torch.float64)
    layer, bottom, top = make_layer(pool("pool: MAX kernel_size: 2 stride: 1 pad: 1"), [x])
    (y,) = run_forward(layer, bottom, top)
    assert bool((y == -1).all())


def test_ave_divisor_counts_padding_inside_height_plus_pad():
    # 3x3 ones, k 3 s 2 p 1: output 2x2; every window lies inside [-1, 4), so each divisor is 9
    # and the in-image cells number 4: 4/9. With k2 s2 p1 on 3x3 the last window [1,3) is cut at 3+1.
    x = torch.ones(1, 1, 3, 3, dtype=torch.float64)
    layer, bottom, top = make_layer(pool("pool: AVE kernel_size: 3 stride: 2 pad: 1"), [x])
    (y,) = run_forward(layer, bottom, top)
    torch.testing.assert_close(y.view(-1), torch.full((4,), 4 / 9, dtype=torch.float64))
    # 4x4, k 3 s 2 p 1: 3 outputs per axis; row windows [-1,2), [1,4), [3,5) (cut at H + pad = 5)
    # hold 2, 3, 1 image cells and divide by 3, 3, 2.
    x = torch.ones(1, 1, 4, 4, dtype=torch.float64)
    layer, bottom, top = make_layer(pool("pool: AVE kernel_size: 3 stride: 2 pad: 1"), [x])
    (y,) = run_forward(layer, bottom, top)
    inside, divisor = torch.tensor([2.0, 3.0, 1.0]), torch.tensor([3.0, 3.0, 2.0])
    expected = (inside[:, None] * inside[None, :]) / (divisor[:, None] * divisor[None, :])
    torch.testing.assert_close(y.view(3, 3), expected.to(torch.float64))


def test_ave_ceil_window_beyond_height_plus_pad_is_not_counted():
    # 4x4, k 3 s 2, no pad: ceil((4-3)/2)+1 = 2; the second window [2,5) is cut at H + pad = 4: 2x2 cells.
    x = torch.ones(1, 1, 4, 4, dtype=torch.float64)
    layer, bottom, top = make_layer(pool("pool: AVE kernel_size: 3 stride: 2"), [x])
    (y,) = run_forward(layer, bottom, top)
    assert y.view(-1).tolist() == [1.0, 1.0, 1.0, 1.0]


def test_one_window_fast_path_matches_the_window_loop(monkeypatch):
    """Global AVE pooling's fast path gives what the kernel-offset loop gives, forward and back."""
    x = distinct([2, 3, 3, 4])
    results = []
    for fast in (True, False):
        if not fast:
            monkeypatch.setattr(PoolingLayer, "_one_window", lambda self: False)
        layer, bottom, top = make_layer(pool("pool: AVE global_pooling: true"), [x])
        (y,) = run_forward(layer, bottom, top)
        top[0].diff.copy_(distinct(list(top[0].shape)))
        layer.backward(top, [True], bottom)
        results.append((y, bottom[0].diff.clone()))
    torch.testing.assert_close(results[0], results[1])


def test_global_pooling():
    x = distinct([2, 3, 3, 4])
    layer, bottom, top = make_layer(pool("pool: AVE global_pooling: true"), [x])
    (y,) = run_forward(layer, bottom, top)
    torch.testing.assert_close(y, x.mean((2, 3), keepdim=True))
    with pytest.raises(CaffeError, match="With Global_pooling: true Filter size cannot specified"):
        make_layer(pool("global_pooling: true kernel_size: 2"), [x])


@pytest.mark.parametrize(
    "body",
    [
        "pool: MAX kernel_size: 3 stride: 2",
        "pool: MAX kernel_size: 2 stride: 2 pad: 1",
        "pool: MAX kernel_h: 3 kernel_w: 2 stride: 1 pad_h: 1 pad_w: 0",
        "pool: AVE kernel_size: 3 stride: 2",
        "pool: AVE kernel_size: 3 stride: 2 pad: 1",
        "pool: AVE kernel_h: 2 kernel_w: 3 stride_h: 1 stride_w: 2 pad_h: 1 pad_w: 1",
        "pool: AVE global_pooling: true",
        "pool: AVE kernel_h: 5 kernel_w: 4",
    ],
)
def test_gradient(body):
    layer, bottom, top = make_layer(pool(body), [distinct([2, 2, 5, 4])])
    check_gradients(layer, bottom, top)


def test_bottom_diff_is_zeroed_then_scattered():
    layer, bottom, top = make_layer(pool("pool: MAX kernel_size: 2 stride: 2"), [distinct([1, 1, 4, 4])])
    run_forward(layer, bottom, top)
    top[0].diff.fill_(1)
    bottom[0].diff.fill_(100)
    layer.backward(top, [True], bottom)
    assert float(bottom[0].diff.sum()) == 4.0
    bottom[0].diff.fill_(100)
    layer.backward(top, [False], bottom)
    assert bool((bottom[0].diff == 100).all())


def test_stochastic_is_not_implemented_on_cpu():
    layer, bottom, top = make_layer(
        pool("pool: STOCHASTIC kernel_size: 2"), [torch.ones(1, 1, 3, 3)], phase="TEST"
    )
    with pytest.raises(CaffeError, match="Not Implemented Yet"):
        run_forward(layer, bottom, top)


def test_checks():
    with pytest.raises(CaffeError, match="Input must have 4 axes"):
        make_layer(pool("kernel_size: 2"), [torch.ones(1, 3, 3)])
    with pytest.raises(CaffeError, match="pad_h_ < kernel_h_"):
        make_layer(pool("kernel_size: 2 pad: 2"), [torch.ones(1, 1, 3, 3)])
    with pytest.raises(CaffeError, match="Pooling Layer produces at most 1 top blob"):
        make_layer(pool("pool: AVE kernel_size: 2"), [torch.ones(1, 1, 3, 3)], num_tops=2)


def test_in_place_is_refused():
    from google.protobuf import text_format
    from layer_testing import PHASES

    from reference_engine import caffe_pb2
    from reference_engine.blob import Blob
    from reference_engine.layers.pooling import PoolingLayer

    param = text_format.Parse(pool("kernel_size: 2"), caffe_pb2.LayerParameter())
    layer = PoolingLayer(param, PHASES["TRAIN"], torch.float64, "cpu")
    blob = Blob([1, 1, 4, 4], dtype=torch.float64)
    with pytest.raises(Unsupported):
        layer.setup([blob], [blob])


def test_max_backward_of_mask_minus_one_lands_on_the_previous_plane():
    """Caffe adds top_diff at bottom_diff + plane offset + mask: a -1 from an all -inf window
    reaches the previous plane's last cell; in the first plane it would write before the blob."""
    inf = float("inf")
    x = torch.tensor([[[[1.0, 3.0], [2.0, 0.0]], [[-inf, -inf], [-inf, -inf]]]], dtype=torch.float64)
    layer, bottom, top = make_layer(pool("pool: MAX kernel_size: 2 stride: 2"), [x])
    run_forward(layer, bottom, top)
    top[0].diff.copy_(torch.tensor([5.0, 7.0]).view(1, 2, 1, 1))
    layer.backward(top, [True], bottom)
    assert bottom[0].diff.view(-1).tolist() == [0.0, 5.0, 0.0, 7.0, 0.0, 0.0, 0.0, 0.0]
    layer, bottom, top = make_layer(pool("pool: MAX kernel_size: 2 stride: 2"), [x.flip(1)])
    run_forward(layer, bottom, top)
    with pytest.raises(Unsupported, match="first plane"):
        layer.backward(top, [True], bottom)
