"""The element-wise layers: forward values, finite-difference gradients, Caffe's corner cases.

Ports of src/caffe/test/test_neuron_layer.cpp (ReLU, ELU, Sigmoid, TanH, AbsVal, Exp, Log,
BNLL, Threshold, Dropout, Clip, Swish, PReLU) and test_power_layer.cpp. Inputs stay away
from kinks the way Caffe's checkers do (a margin around 0, or around the clip bounds).
"""

import math

import pytest
import torch
from google.protobuf import text_format
from layer_testing import check_gradients, make_layer, run_forward

from reference_engine import caffe_pb2
from reference_engine.blob import Blob
from reference_engine.checks import CaffeError
from reference_engine.layer import layer_class
from reference_engine.semantics import CAFFE_1_0


def gaussian(shape=(2, 3, 2, 2), seed=1701, margin=0.0):
    """Gaussian values; with a margin, each value is pushed at least that far from 0."""
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return x + margin * torch.sign(x)


def positive(shape=(2, 3, 2, 2), seed=1701, low=0.5, high=2.0):
    u = torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return low + (high - low) * u


def in_place(prototxt, value, phase="TRAIN", dtype=torch.float64, semantics=None):
    """A layer set up with top 0 and bottom 0 the same Blob, as the net does for in-place layers."""
    param = text_format.Parse(prototxt, caffe_pb2.LayerParameter())
    kwargs = {} if semantics is None else {"semantics": semantics}
    layer = layer_class(param.type)(param, getattr(caffe_pb2, phase), dtype, "cpu", **kwargs)
    blob = Blob(value.shape, dtype=dtype)
    blob.data.copy_(value)
    layer.setup([blob], [blob])
    return layer, blob


# ---- ReLU --------------------------------------------------------------------------------------


@pytest.mark.parametrize("slope", [None, 0.01, -0.5, 2.0])
def test_relu_forward_and_gradient(slope):
    proto = 'type: "ReLU"' + ("" if slope is None else f" relu_param {{ negative_slope: {slope} }}")
    x = gaussian(margin=0.05)
    layer, bottom, top = make_layer(proto, [x])
    (y,) = run_forward(layer, bottom, top)
    s = 0.0 if slope is None else float(torch.tensor(slope, dtype=torch.float32))  # a proto float
    assert torch.equal(y, torch.where(x > 0, x, s * x))
    check_gradients(layer, bottom, top)


def test_relu_gradient_at_zero_is_the_slope():
    layer, bottom, top = make_layer('type: "ReLU" relu_param { negative_slope: 0.25 }', [torch.zeros(3)])
    run_forward(layer, bottom, top)
    top[0].diff.fill_(2.0)
    layer.backward(top, [True], bottom)
    assert torch.equal(bottom[0].diff, torch.full((3,), 0.5, dtype=torch.float64))


def test_relu_minus_infinity_gives_nan_as_caffe_sum_does():
    layer, bottom, top = make_layer('type: "ReLU"', [torch.tensor([-math.inf, 1.0])])
    (y,) = run_forward(layer, bottom, top)
    assert math.isnan(y[0]) and y[1] == 1.0


SPECIAL = [-math.inf, -2.0, -1e-30, -0.0, 0.0, 1e-30, 3.0, math.inf, math.nan]


def same_bits(a: float, b: float) -> bool:
    """Equal including the sign of a zero; any NaN meets any NaN."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("slope", [0.0, 0.25, -0.5, 1e-20, math.inf])
def test_relu_is_caffes_arithmetic_element_by_element(slope, dtype):
    """max(x, 0) + slope * min(x, 0) and dy * ((x > 0) + slope * (x <= 0)) as relu_layer.cpp
    computes them, one element at a time in the blob's type: NaN, infinities, the sign of a
    zero (slope 0 turns -2 into +0 but keeps -0), an underflowing product. 67 elements, so
    that both torch's vectorised loop and its scalar tail see every value."""
    x = torch.tensor(SPECIAL * 8, dtype=dtype)[:67]
    dy = torch.tensor([1.5, -math.inf, 0.5, 2.0, -3.0, math.nan, 7.0] * 10, dtype=dtype)[:67]
    layer, bottom, top = make_layer(
        f'type: "ReLU" relu_param {{ negative_slope: {slope} }}', [x], dtype=dtype
    )
    (y,) = run_forward(layer, bottom, top)
    top[0].diff.copy_(dy)
    layer.backward(top, [True], bottom)

    def as_dtype(v):
        return torch.tensor(v, dtype=dtype)

    s = as_dtype(float(torch.tensor(slope, dtype=torch.float32)))  # a proto float, then Dtype
    for i, (xi, dyi) in enumerate(zip(x, dy)):
        high = as_dtype(0.0) if xi < 0 else xi  # std::max(x, 0): (x < 0) ? 0 : x
        low = as_dtype(0.0) if 0 < xi else xi  # std::min(x, 0): (0 < x) ? 0 : x
        expected_y = high + s * low
        expected_dx = dyi * (as_dtype(float(xi > 0)) + s * as_dtype(float(xi <= 0)))
        assert same_bits(float(y[i]), float(expected_y)), (
            f"y[{i}] for x={float(xi)}: {float(y[i])} vs {float(expected_y)}"
        )
        assert same_bits(float(bottom[0].diff[i]), float(expected_dx)), f"dx[{i}] for x={float(xi)}"


def test_relu_in_place_reads_the_output_in_backward():
    x = torch.tensor([-2.0, 3.0])
    layer, blob = in_place('type: "ReLU" relu_param { negative_slope: -0.5 }', x)
    layer.forward_layer([blob], [blob])
    assert blob.data.tolist() == [1.0, 3.0]
    blob.diff.fill_(1.0)
    layer.backward([blob], [True], [blob])
    # With a negative slope the output has lost x's sign: Caffe's gradient is wrong in place.
    assert blob.diff.tolist() == [1.0, 1.0]


# ---- ELU, Sigmoid, TanH, AbsVal, BNLL --------------------------------------------------------


@pytest.mark.parametrize("alpha", [None, 0.5, 0.0])
def test_elu_forward_and_gradient(alpha):
    proto = 'type: "ELU"' + ("" if alpha is None else f" elu_param {{ alpha: {alpha} }}")
    x = gaussian(margin=0.05)
    layer, bottom, top = make_layer(proto, [x])
    (y,) = run_forward(layer, bottom, top)
    a = 1.0 if alpha is None else alpha
    torch.testing.assert_close(y, torch.where(x > 0, x, a * (torch.exp(x) - 1)), rtol=1e-14, atol=1e-15)
    check_gradients(layer, bottom, top)


def test_sigmoid_forward_and_gradient():
    x = gaussian()
    layer, bottom, top = make_layer('type: "Sigmoid"', [x])
    (y,) = run_forward(layer, bottom, top)
    torch.testing.assert_close(y, 1 / (1 + torch.exp(-x)), rtol=1e-14, atol=1e-15)
    check_gradients(layer, bottom, top)


def test_sigmoid_float_is_the_rounded_double_tanh_form():
    x = gaussian(shape=(50,)).to(torch.float32)
    layer, bottom, top = make_layer('type: "Sigmoid"', [x], dtype=torch.float32)
    (y,) = run_forward(layer, bottom, top)
    expected = (0.5 * torch.tanh(0.5 * x.double()) + 0.5).float()
    assert torch.equal(y, expected)


def test_tanh_forward_and_gradient():
    x = gaussian()
    layer, bottom, top = make_layer('type: "TanH"', [x])
    (y,) = run_forward(layer, bottom, top)
    torch.testing.assert_close(y, torch.tanh(x), rtol=1e-14, atol=1e-15)
    check_gradients(layer, bottom, top)


def test_absval_forward_and_gradient():
    x = gaussian(margin=0.05)
    layer, bottom, top = make_layer('type: "AbsVal"', [x])
    (y,) = run_forward(layer, bottom, top)
    assert torch.equal(y, x.abs())
    check_gradients(layer, bottom, top)


def test_absval_refuses_in_place():
    with pytest.raises(
        CaffeError,
        match=r"^Check failed: top\[0\] != bottom\[0\] \(0x.* vs\. 0x.*\) "
        r"AbsVal Layer does not allow in-place computation\.$",
    ):
        in_place('type: "AbsVal"', torch.ones(2))


def test_bnll_forward_and_gradient():
    x = gaussian(margin=0.05) * 3
    layer, bottom, top = make_layer('type: "BNLL"', [x])
    (y,) = run_forward(layer, bottom, top)
    torch.testing.assert_close(y, torch.nn.functional.softplus(x), rtol=1e-14, atol=1e-15)
    check_gradients(layer, bottom, top)


def test_bnll_backward_caps_x_at_the_threshold():
    layer, bottom, top = make_layer('type: "BNLL"', [torch.tensor([1000.0])])
    run_forward(layer, bottom, top)
    top[0].diff.fill_(1.0)
    layer.backward(top, [True], bottom)
    assert bottom[0].diff[0] == math.exp(50) / (math.exp(50) + 1)


# ---- Power, Exp, Log -----------------------------------------------------------------------------


POWER_SETTINGS = [
    (0.37, 0.83, -2.4),  # general: (shift + scale x)^power / (shift + scale x)
    (2.0, 0.34, -2.4),  # power 2
    (2.0, 0.83, 0.0),  # power 2, no shift
    (1.0, 0.83, -2.4),  # power 1: a constant gradient
    (0.37, 0.83, 0.0),  # no shift: power * y / x
    (-0.5, 1.0, 0.0),
]


@pytest.mark.parametrize("power, scale, shift", POWER_SETTINGS)
def test_power_forward_and_gradient(power, scale, shift):
    # Keep shift + scale x positive so that non-integer powers are defined (test_power_layer.cpp).
    x = positive(low=3.0, high=4.0)
    layer, bottom, top = make_layer(
        f'type: "Power" power_param {{ power: {power} scale: {scale} shift: {shift} }}', [x]
    )
    (y,) = run_forward(layer, bottom, top)
    p, a, b = (float(torch.tensor(v, dtype=torch.float32)) for v in (power, scale, shift))
    torch.testing.assert_close(y, (b + a * x) ** p, rtol=1e-13, atol=0)
    check_gradients(layer, bottom, top)


@pytest.mark.parametrize("power, scale, expected", [(0.0, 0.83, 1.0), (0.37, 0.0, (-2.4) ** 0.37)])
def test_power_ignores_x_when_power_or_scale_is_zero(power, scale, expected):
    layer, bottom, top = make_layer(
        f'type: "Power" power_param {{ power: {power} scale: {scale} shift: 2.0 }}', [gaussian()]
    )
    (y,) = run_forward(layer, bottom, top)
    shift_result = (
        1.0 if power == 0 else float(torch.tensor(2.0) ** torch.tensor(0.37, dtype=torch.float32).double())
    )
    assert torch.equal(y, torch.full_like(y, shift_result))
    # The gradient is a plain 0, never multiplied by the top diff.
    top[0].diff.fill_(math.nan)
    layer.backward(top, [True], bottom)
    assert torch.equal(bottom[0].diff, torch.zeros_like(y))


def test_power_no_shift_gradient_is_nan_at_zero():
    layer, bottom, top = make_layer('type: "Power" power_param { power: 3 }', [torch.tensor([0.0, 1.0])])
    run_forward(layer, bottom, top)
    top[0].diff.fill_(1.0)
    layer.backward(top, [True], bottom)
    assert math.isnan(bottom[0].diff[0]) and bottom[0].diff[1] == 3.0


EXP_LOG_SETTINGS = [
    (-1.0, 1.0, 0.0),
    (2.0, 1.0, 0.0),
    (2.0, 1.0, 1.0),
    (2.0, 3.0, 0.0),
    (2.0, 3.0, 1.0),
    (-1.0, 0.5, 1.0),
]


@pytest.mark.parametrize("base, scale, shift", EXP_LOG_SETTINGS)
def test_exp_forward_and_gradient(base, scale, shift):
    x = gaussian() * 0.5
    layer, bottom, top = make_layer(
        f'type: "Exp" exp_param {{ base: {base} scale: {scale} shift: {shift} }}', [x]
    )
    (y,) = run_forward(layer, bottom, top)
    b = math.e if base == -1 else base
    torch.testing.assert_close(y, b ** (shift + scale * x), rtol=1e-6, atol=0)  # log(base) is a float
    check_gradients(layer, bottom, top)


@pytest.mark.parametrize("base, scale, shift", EXP_LOG_SETTINGS)
def test_log_forward_and_gradient(base, scale, shift):
    x = positive()
    layer, bottom, top = make_layer(
        f'type: "Log" log_param {{ base: {base} scale: {scale} shift: {shift} }}', [x]
    )
    (y,) = run_forward(layer, bottom, top)
    b = math.e if base == -1 else base
    torch.testing.assert_close(y, torch.log(shift + scale * x) / math.log(b), rtol=1e-6, atol=0)
    check_gradients(layer, bottom, top)


@pytest.mark.parametrize("kind", ["Exp", "Log"])
def test_base_must_be_positive(kind):
    message = "Check failed: base > 0 (-2 vs. 0) base must be strictly positive."
    with pytest.raises(CaffeError) as error:
        make_layer(f'type: "{kind}" {kind.lower()}_param {{ base: -2 }}', [positive()])
    assert error.value.message == message


def test_log_base_one_is_refused_with_caffes_inf_check():
    with pytest.raises(
        CaffeError,
        match=r"^Check failed: !isinf\(base_scale_\) Inf result: 1/log\(base\) = "
        r"1/log\(1\) = inf$",
    ):
        make_layer('type: "Log" log_param { base: 1 }', [positive()])


# ---- Threshold -----------------------------------------------------------------------------------


@pytest.mark.parametrize("threshold", [None, 0.5])
def test_threshold_forward_is_strict(threshold):
    t = 0.0 if threshold is None else threshold
    x = torch.tensor([t - 1, t, t + 1e-9, t + 1], dtype=torch.float64)
    proto = 'type: "Threshold"' + (
        "" if threshold is None else f" threshold_param {{ threshold: {threshold} }}"
    )
    layer, bottom, top = make_layer(proto, [x])
    (y,) = run_forward(layer, bottom, top)
    assert y.tolist() == [0.0, 0.0, 1.0, 1.0]


def test_threshold_backward_is_not_implemented_even_without_propagate_down():
    layer, bottom, top = make_layer('type: "Threshold"', [gaussian()])
    run_forward(layer, bottom, top)
    with pytest.raises(CaffeError, match="^Not Implemented Yet$"):
        layer.backward(top, [False], bottom)


# ---- Clip and Swish (master only) ----------------------------------------------------------------


def test_clip_forward_and_gradient():
    x = gaussian(shape=(40,)) * 2
    # Keep values away from the bounds, where the gradient jumps.
    x = torch.where((x - 1).abs() < 0.05, x + 0.1, x)
    x = torch.where((x + 1).abs() < 0.05, x - 0.1, x)
    layer, bottom, top = make_layer('type: "Clip" clip_param { min: -1 max: 1 }', [x])
    (y,) = run_forward(layer, bottom, top)
    assert torch.equal(y, x.clamp(-1, 1))
    check_gradients(layer, bottom, top)


def test_clip_bounds_are_inclusive_and_nan_becomes_min():
    layer, bottom, top = make_layer(
        'type: "Clip" clip_param { min: -1 max: 1 }', [torch.tensor([-1.0, 1.0, math.nan, 2.0])]
    )
    (y,) = run_forward(layer, bottom, top)
    assert y.tolist() == [-1.0, 1.0, -1.0, 1.0]
    top[0].diff.fill_(1.0)
    layer.backward(top, [True], bottom)
    assert bottom[0].diff.tolist() == [1.0, 1.0, 0.0, 0.0]


@pytest.mark.parametrize("beta", [None, 1.5, 0.0])
def test_swish_forward_and_gradient(beta):
    x = gaussian()
    proto = 'type: "Swish"' + ("" if beta is None else f" swish_param {{ beta: {beta} }}")
    layer, bottom, top = make_layer(proto, [x])
    (y,) = run_forward(layer, bottom, top)
    b = 1.0 if beta is None else beta
    torch.testing.assert_close(y, x * torch.sigmoid(b * x), rtol=1e-14, atol=1e-15)
    check_gradients(layer, bottom, top)


@pytest.mark.parametrize("kind", ["Clip", "Swish"])
def test_clip_and_swish_are_unknown_types_in_caffe_1_0(kind):
    param = text_format.Parse(f'type: "{kind}" clip_param {{ min: 0 max: 1 }}', caffe_pb2.LayerParameter())
    with pytest.raises(
        CaffeError,
        match=f"^Check failed: registry.count\\(type\\) == 1 Unknown layer type: "
        f"{kind} \\(known types: AbsVal, Accuracy, .*\\)$",
    ) as error:
        layer_class(kind)(param, caffe_pb2.TRAIN, torch.float64, "cpu", semantics=CAFFE_1_0)
    known = error.value.message.split("(known types: ")[1].rstrip(")").split(", ")
    assert "Clip" not in known and "Swish" not in known and "ReLU" in known


# ---- Dropout -------------------------------------------------------------------------------------


@pytest.mark.parametrize("ratio", [None, 0.75])
def test_dropout_train_uses_the_injected_mask(ratio):
    x = gaussian()
    proto = 'type: "Dropout"' + ("" if ratio is None else f" dropout_param {{ dropout_ratio: {ratio} }}")
    layer, bottom, top = make_layer(proto, [x])
    mask = (torch.arange(x.numel()) % 3 != 0).to(torch.uint8).reshape(x.shape)
    layer.set_mask(mask)
    (y,) = run_forward(layer, bottom, top)
    scale = 1 / (1 - (0.5 if ratio is None else float(torch.tensor(ratio, dtype=torch.float32))))
    assert torch.equal(y, x * mask * scale)
    top[0].diff.copy_(torch.ones_like(x))
    layer.backward(top, [True], bottom)
    assert torch.equal(bottom[0].diff, mask * torch.full_like(x, scale))


def test_dropout_mask_is_used_once_then_drawn_from_the_generator():
    x = torch.ones(1000, dtype=torch.float64)
    layer, bottom, top = make_layer('type: "Dropout"', [x])
    layer.set_mask(torch.ones(1000, dtype=torch.uint8))
    (first,) = run_forward(layer, bottom, top)
    assert torch.equal(first, torch.full_like(x, 2.0))
    layer.generator.manual_seed(5)
    (second,) = run_forward(layer, bottom, top)
    assert set(second.tolist()) == {0.0, 2.0} and 400 < int((second == 0).sum()) < 600
    layer.generator.manual_seed(5)
    (third,) = run_forward(layer, bottom, top)
    assert torch.equal(second, third)


def test_dropout_gradient_with_a_fixed_mask():
    x = gaussian()
    layer, bottom, top = make_layer('type: "Dropout" dropout_param { dropout_ratio: 0.3 }', [x])
    mask = (torch.arange(x.numel()) % 2 == 0).to(torch.uint8).reshape(x.shape)
    # Every forward of the checker would draw a new mask; inject the same one before each.

    def forward_with_fixed_mask(bottom_, top_):
        layer.set_mask(mask)
        type(layer).forward(layer, bottom_, top_)

    layer.forward = forward_with_fixed_mask
    check_gradients(layer, bottom, top)


def test_dropout_test_phase_is_identity():
    x = gaussian()
    layer, bottom, top = make_layer('type: "Dropout"', [x], phase="TEST")
    (y,) = run_forward(layer, bottom, top)
    assert torch.equal(y, x)
    check_gradients(layer, bottom, top)


def test_dropout_refuses_a_mask_of_the_wrong_shape():
    layer, _bottom, _top = make_layer('type: "Dropout"', [gaussian()])
    with pytest.raises(ValueError, match=r"mask shape \[3\]"):
        layer.set_mask(torch.ones(3))


# ---- PReLU ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("shared", [False, True])
def test_prelu_forward_and_gradient(shared):
    x = gaussian(margin=0.05)
    proto = f'type: "PReLU" prelu_param {{ channel_shared: {str(shared).lower()} }}'
    layer, bottom, top = make_layer(proto, [x])
    assert layer.blobs[0].shape == ([] if shared else [3])
    assert torch.equal(layer.blobs[0].data, torch.full(layer.blobs[0].shape, 0.25, dtype=torch.float64))
    layer.blobs[0].data.copy_(torch.tensor(0.3) if shared else torch.tensor([0.1, -0.2, 0.7]))
    (y,) = run_forward(layer, bottom, top)
    slope = layer.blobs[0].data if shared else layer.blobs[0].data.reshape(1, 3, 1, 1)
    assert torch.equal(y, torch.where(x > 0, x, slope * x))
    check_gradients(layer, bottom, top)


def test_prelu_with_a_filler_and_two_axes():
    x = gaussian(shape=(4, 3), margin=0.05)
    layer, bottom, top = make_layer(
        'type: "PReLU" prelu_param { filler { type: "constant" value: 0.5 } }', [x]
    )
    assert layer.blobs[0].data.tolist() == [0.5, 0.5, 0.5]
    check_gradients(layer, bottom, top)


def test_prelu_param_diff_accumulates_across_backward_calls():
    x = gaussian(margin=0.05)
    layer, bottom, top = make_layer('type: "PReLU"', [x])
    layer.param_propagate_down = [True]
    run_forward(layer, bottom, top)
    top[0].diff.copy_(gaussian(seed=3))
    layer.backward(top, [True], bottom)
    once = layer.blobs[0].diff.clone()
    assert not torch.equal(once, torch.zeros(3, dtype=torch.float64))
    layer.backward(top, [True], bottom)
    torch.testing.assert_close(layer.blobs[0].diff, 2 * once, rtol=1e-15, atol=0)


def test_prelu_in_place_matches_out_of_place():
    x, dy = gaussian(margin=0.05), gaussian(seed=3)
    layer, bottom, top = make_layer('type: "PReLU"', [x])
    layer.param_propagate_down = [True]
    run_forward(layer, bottom, top)
    top[0].diff.copy_(dy)
    layer.backward(top, [True], bottom)

    inplace_layer, blob = in_place('type: "PReLU"', x)
    inplace_layer.param_propagate_down = [True]
    inplace_layer.forward_layer([blob], [blob])
    assert torch.equal(blob.data, top[0].data)
    blob.diff.copy_(dy)
    inplace_layer.backward([blob], [True], [blob])
    assert torch.equal(blob.diff, bottom[0].diff)
    assert torch.equal(inplace_layer.blobs[0].diff, layer.blobs[0].diff)


def test_prelu_needs_two_axes():
    with pytest.raises(
        CaffeError,
        match=r"^Check failed: bottom\[0\]->num_axes\(\) >= 2 \(1 vs\. 2\) "
        r"Number of axes of bottom blob must be >=2\.$",
    ):
        make_layer('type: "PReLU"', [torch.ones(3)])
