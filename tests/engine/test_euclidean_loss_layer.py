"""EuclideanLoss: a port of src/caffe/test/test_euclidean_loss_layer.cpp."""

import pytest
import torch
from layer_testing import check_gradients, make_layer, run_forward


def gaussian(shape, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("a_shape, b_shape", [((5, 3, 2), (5, 3, 2)), ((4, 6), (4, 2, 3)), ((3,), (3,))])
def test_forward_and_gradient_to_both_bottoms(a_shape, b_shape):
    a, b = gaussian(a_shape, 1), gaussian(b_shape, 2)
    layer, bottom, top = make_layer('type: "EuclideanLoss"', [a, b])
    (loss,) = run_forward(layer, bottom, top)
    torch.testing.assert_close(loss, ((a - b.reshape(a.shape)) ** 2).sum() / a.shape[0] / 2)
    check_gradients(layer, bottom, top)


def test_gradients_have_opposite_signs_and_follow_the_loss_weight():
    a, b = gaussian((4, 3), 1), gaussian((4, 3), 2)
    layer, bottom, top = make_layer('type: "EuclideanLoss" loss_weight: 3', [a, b])
    assert layer.forward_layer(bottom, top) == pytest.approx(3 * float(top[0].data))
    layer.backward(top, [True, True], bottom)
    torch.testing.assert_close(bottom[0].diff, 3 * (a - b) / 4)
    torch.testing.assert_close(bottom[1].diff, -3 * (a - b) / 4)


def test_either_bottom_may_be_forced():
    layer_class = make_layer('type: "EuclideanLoss"', [gaussian((2, 2), 1), gaussian((2, 2), 2)])[0]
    assert layer_class.allow_force_backward(0) and layer_class.allow_force_backward(1)
