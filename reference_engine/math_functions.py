"""Caffe's BLAS wrappers where their result is not the IEEE value of their formula.

Caffe: src/caffe/util/math_functions.cpp. caffe_scal, caffe_axpy and caffe_cpu_axpby call
cblas_?scal, cblas_?axpy and cblas_?axpby, and the OpenBLAS behind them (bullseye's
0.3.13; checked there, docs/semantics.md §8) skips the operand a zero coefficient multiplies:

    scal(0, x)            x := 0, also where x is NaN or inf
    scal(NaN, x)          x := 0 (single precision only: sscal's kernel treats NaN as 0)
    axpy(0, x, y)         y unchanged, whatever x holds
    axpby(0, x, b, y)     y := b * y, x never read;  axpby(a, x, 0, y): y := a * x, y never read

IEEE arithmetic on the formula gives 0 * NaN = NaN there. A layer whose Backward scales by
its loss weight (0 is a common weight) or by an incoming diff of exactly 0 therefore writes
0 in Caffe where the formula writes NaN; the reference calls these where Caffe does.
"""

import torch


def _times(alpha, x, zero):
    """alpha * x, and 0 where ``zero`` (a condition on alpha) holds, whatever x is there."""
    if isinstance(zero, torch.Tensor) and zero.numel() > 1:
        return torch.where(zero, torch.zeros((), dtype=x.dtype, device=x.device), alpha * x)
    return torch.zeros_like(x) if bool(zero) else alpha * x


def scal(alpha, x):
    """caffe_scal / caffe_cpu_scale: alpha * x, 0 for alpha == 0 and for a NaN alpha.

    The NaN case is OpenBLAS 0.3.13's sscal (what float Caffe calls); its dscal multiplies.
    pycaffe is float Caffe, which the reference models in either of its dtypes."""
    alpha = torch.as_tensor(alpha, dtype=x.dtype, device=x.device)
    return _times(alpha, x, (alpha == 0) | torch.isnan(alpha))


def axpy(alpha, x, y):
    """caffe_axpy: alpha * x + y; alpha == 0 leaves y as it is."""
    return y.clone() if bool(alpha == 0) else alpha * x + y


def axpby(alpha, x, beta, y):
    """caffe_cpu_axpby: alpha * x + beta * y, a zero coefficient skipping its operand."""
    if bool(beta == 0):
        return _times(alpha, x, alpha == 0)
    if bool(alpha == 0):
        return beta * y
    return alpha * x + beta * y


def sign(x):
    """caffe_cpu_sign: (0 < x) - (x < 0), which is 0 for NaN where torch.sign gives NaN."""
    return (x > 0).to(x.dtype) - (x < 0).to(x.dtype)
