"""Convolution: forward against a direct sum, gradients by finite differences, diff conventions.

Follows src/caffe/test/test_convolution_layer.cpp (simple, group, dilation, N-D settings)."""

import itertools

import pytest
import torch
from layer_testing import check_gradients, make_layer, run_forward

from reference_engine.checks import CaffeError
from reference_engine.layers import base_conv

# Tiny tensors: one thread avoids pool contention that slows every op a hundredfold here.


def conv_proto(body, bias=True):
    return f"""type: "Convolution" convolution_param {{ {body}
      weight_filler {{ type: "gaussian" std: 0.5 }} bias_filler {{ type: "gaussian" std: 0.5 }}
      bias_term: {"true" if bias else "false"} }}"""


def direct_conv(x, w, b, stride, pad, dilation, group):
    """Caffe's im2col + gemm written as loops over output positions (zero outside the image)."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    oh = int((h + 2 * pad[0] - (dilation[0] * (kh - 1) + 1)) / stride[0]) + 1
    ow = int((wd + 2 * pad[1] - (dilation[1] * (kw - 1) + 1)) / stride[1]) + 1
    margin = max(kh * dilation[0], kw * dilation[1]) + max(stride) * (oh + ow) + 2 * max(pad)
    xp = torch.zeros(n, c, h + 2 * margin, wd + 2 * margin, dtype=x.dtype)
    xp[:, :, margin : margin + h, margin : margin + wd] = x  # zeros everywhere outside the image
    y = torch.zeros(n, o, oh, ow, dtype=x.dtype)
    og = o // group
    rows, cols = torch.arange(oh), torch.arange(ow)
    for a, bb in itertools.product(range(kh), range(kw)):
        hh = rows * stride[0] - pad[0] + a * dilation[0] + margin
        ww = cols * stride[1] - pad[1] + bb * dilation[1] + margin
        patch = xp[:, :, hh][:, :, :, ww]
        for g in range(group):
            part = patch[:, g * cg : (g + 1) * cg]
            y[:, g * og : (g + 1) * og] += torch.einsum(
                "oc,nchw->nohw", w[g * og : (g + 1) * og, :, a, bb], part
            )
    if b is not None:
        y += b.view(1, -1, 1, 1)
    return y


SETTINGS = [
    ("num_output: 4 kernel_size: 3 stride: 2", (2, 2), (0, 0), (1, 1), 1),
    ("num_output: 2 kernel_size: 2 pad: 1", (1, 1), (1, 1), (1, 1), 1),
    (
        "num_output: 4 kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 0 group: 2",
        (2, 1),
        (1, 0),
        (1, 1),
        2,
    ),
    ("num_output: 2 kernel_size: 2 dilation: 2", (1, 1), (0, 0), (2, 2), 1),
    (
        "num_output: 2 kernel_size: 4 stride: 2",
        (2, 2),
        (0, 0),
        (1, 1),
        1,
    ),  # window overhangs: 3 -> 1
]


@pytest.mark.parametrize("body,stride,pad,dilation,group", SETTINGS)
def test_forward_matches_direct_sum(body, stride, pad, dilation, group):
    x = torch.randn(2, 4, 5, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    if "kernel_size: 4" in body:
        x = x[:, :, :3, :3]
    layer, bottom, top = make_layer(conv_proto(body), [x])
    (y,) = run_forward(layer, bottom, top)
    expected = direct_conv(x, layer.blobs[0].data, layer.blobs[1].data, stride, pad, dilation, group)
    assert y.shape == expected.shape
    torch.testing.assert_close(y, expected)


def test_output_size_truncates_toward_zero():
    # 3x3 input, kernel 4, stride 2: (3 - 4) / 2 + 1 = 1 in C++ (docs/semantics.md §7.4).
    _, _, top = make_layer(conv_proto("num_output: 1 kernel_size: 4 stride: 2"), [torch.ones(1, 1, 3, 3)])
    assert top[0].shape == [1, 1, 1, 1]


@pytest.mark.parametrize("body,stride,pad,dilation,group", SETTINGS)
def test_gradient(body, stride, pad, dilation, group):
    bias = "group" not in body
    x = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    if "kernel_size: 4" in body:
        x = x[:, :, :3, :3]
    layer, bottom, top = make_layer(conv_proto(body, bias), [x])
    check_gradients(layer, bottom, top)


def test_gradient_two_bottoms_and_3d():
    g = torch.Generator().manual_seed(7)
    a, b = (
        torch.randn(1, 2, 4, 4, generator=g, dtype=torch.float64),
        torch.randn(1, 2, 4, 4, generator=g, dtype=torch.float64),
    )
    layer, bottom, top = make_layer(conv_proto("num_output: 2 kernel_size: 3 pad: 1"), [a, b], num_tops=2)
    check_gradients(layer, bottom, top)
    x = torch.randn(1, 2, 3, 3, 3, generator=g, dtype=torch.float64)
    layer, bottom, top = make_layer(conv_proto("num_output: 2 kernel_size: 2"), [x])
    check_gradients(layer, bottom, top)


def test_channel_axis():
    x = torch.randn(2, 3, 2, 4, 4, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    layer, bottom, top = make_layer(conv_proto("num_output: 2 kernel_size: 3 axis: 2"), [x])
    assert top[0].shape == [2, 3, 2, 2, 2]
    (y,) = run_forward(layer, bottom, top)
    expected = direct_conv(
        x.reshape(6, 2, 4, 4), layer.blobs[0].data, layer.blobs[1].data, (1, 1), (0, 0), (1, 1), 1
    )
    torch.testing.assert_close(y, expected.reshape(2, 3, 2, 2, 2))


def test_param_diffs_accumulate_and_bottom_diff_is_overwritten():
    x = torch.randn(1, 2, 4, 4, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    layer, bottom, top = make_layer(conv_proto("num_output: 2 kernel_size: 3"), [x])
    layer.param_propagate_down = [True, True]
    run_forward(layer, bottom, top)
    top[0].diff.fill_(1)
    bottom[0].diff.fill_(100)
    layer.backward(top, [True], bottom)
    first = [p.diff.clone() for p in layer.blobs] + [bottom[0].diff.clone()]
    layer.backward(top, [True], bottom)
    torch.testing.assert_close(layer.blobs[0].diff, 2 * first[0])
    torch.testing.assert_close(layer.blobs[1].diff, 2 * first[1])
    torch.testing.assert_close(bottom[0].diff, first[2])


@pytest.mark.parametrize("group_bytes", [1, 700])
def test_image_groups_give_the_whole_batch_result(group_bytes, monkeypatch):
    """Forward, bottom diffs and accumulated param diffs are the same whether the batch is
    convolved at once or in groups of images (one image per group, or uneven groups of two);
    with the channel axis at 2 the batch is every leading axis, and two bottoms share weights."""
    g = torch.Generator().manual_seed(17)
    bottoms = [torch.randn(5, 2, 2, 5, 5, generator=g, dtype=torch.float64) for _ in range(2)]
    proto = conv_proto("num_output: 3 kernel_size: 3 stride: 2 pad: 1 axis: 2")
    results, weights = [], None
    for bytes_ in (base_conv.GROUP_BYTES, group_bytes):
        monkeypatch.setattr(base_conv, "GROUP_BYTES", bytes_)
        layer, bottom, top = make_layer(proto, bottoms, num_tops=2)
        weights = weights or [p.data.clone() for p in layer.blobs]
        for p, w in zip(layer.blobs, weights):
            p.data.copy_(w)
        layer.param_propagate_down = [True, True]
        groups = layer.image_groups()
        ys = run_forward(layer, bottom, top)
        for t in top:
            t.diff.copy_(
                torch.randn(t.diff.shape, generator=torch.Generator().manual_seed(19), dtype=torch.float64)
            )
        layer.backward(top, [True, True], bottom)
        results.append(
            (groups, ys + [b.diff.clone() for b in bottom] + [p.diff.clone() for p in layer.blobs])
        )
    (whole, expected), (split, got) = results
    assert len(whole) == 1 and len(split) > 2
    torch.testing.assert_close(got, expected)


def test_propagate_down_and_param_propagate_down_are_honoured():
    x = torch.randn(1, 2, 4, 4, generator=torch.Generator().manual_seed(13), dtype=torch.float64)
    layer, bottom, top = make_layer(conv_proto("num_output: 2 kernel_size: 3"), [x])
    layer.param_propagate_down = [False, True]
    run_forward(layer, bottom, top)
    top[0].diff.fill_(1)
    bottom[0].diff.fill_(7)
    layer.backward(top, [False], bottom)
    assert bool((bottom[0].diff == 7).all())
    assert bool((layer.blobs[0].diff == 0).all())
    assert bool((layer.blobs[1].diff == 4).all())


def test_stored_blobs_are_used_and_shape_checked():
    proto = """type: "Convolution" convolution_param { num_output: 1 kernel_size: 1 bias_term: false }
      blobs { shape { dim: 1 dim: 1 dim: 1 dim: 1 } data: 3 }"""
    layer, bottom, top = make_layer(proto, [torch.ones(1, 1, 2, 2)])
    (y,) = run_forward(layer, bottom, top)
    assert bool((y == 3).all())
    bad = proto.replace(
        "dim: 1 dim: 1 dim: 1 dim: 1 } data: 3", "dim: 1 dim: 1 dim: 1 dim: 2 } data: 3 data: 3"
    )
    with pytest.raises(
        CaffeError,
        match="Incorrect weight shape: expected shape 1 1 1 1 \\(1\\); instead, shape was",
    ):
        make_layer(bad, [torch.ones(1, 1, 2, 2)])


def test_kernel_hw_needs_two_spatial_axes():
    with pytest.raises(CaffeError, match="kernel_h & kernel_w can only be used for 2D convolution."):
        make_layer(conv_proto("num_output: 1 kernel_h: 1 kernel_w: 1"), [torch.ones(1, 1, 2, 2, 2)])
