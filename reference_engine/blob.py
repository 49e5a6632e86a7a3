"""A Caffe Blob: data and diff of one shape, held as torch tensors.

Caffe: include/caffe/blob.hpp, src/caffe/blob.cpp.
"""

import math

import torch

from .checks import check, check_ge, check_le, check_lt

MAX_BLOB_AXES = 32  # kMaxBlobAxes, blob.hpp
INT_MAX = 2**31 - 1


def _as_int32(value: int) -> int:
    """The int a C++ int64 -> int conversion leaves (two's complement wrap-around)."""
    return (value + 2**31) % 2**32 - 2**31


class Blob:
    def __init__(self, shape=(), dtype=torch.float32, device="cpu"):
        self.dtype = dtype
        self.device = device
        self.shape = []
        self._capacity = 0
        self._data_storage = torch.zeros(0, dtype=dtype, device=device)
        self._diff_storage = torch.zeros(0, dtype=dtype, device=device)
        self._data = self._diff = None
        self.reshape(list(shape))

    # Caffe allocates a blob's memory only once its count is above 0; reading the data or
    # diff of a blob that never had any is a CHECK (blob.cpp, Blob::cpu_data: CHECK(data_)).
    @property
    def data(self) -> torch.Tensor:
        if self._data is None:
            check(False, "data_")
        return self._data

    @property
    def diff(self) -> torch.Tensor:
        if self._diff is None:
            check(False, "diff_")
        return self._diff

    def reshape(self, shape):
        """Blob::Reshape: memory is reallocated (zeroed) only when the count grows.

        Growing loses what the diff held, loss weights included (docs/semantics.md §3.3).
        """
        # Caffe's Blob holds its dims as int: a BlobShape's int64 dims are truncated on the way.
        shape = [_as_int32(int(d)) for d in shape]
        check_le(len(shape), MAX_BLOB_AXES, "shape.size()", "kMaxBlobAxes")
        count = 1
        for d in shape:
            check_ge(d, 0, "shape[i]", "0")
            if count != 0:
                # glog prints the condition as the preprocessor left it: INT_MAX expanded.
                check_le(d, INT_MAX // count, "shape[i]", "0x7fffffff / count_", "blob size exceeds INT_MAX")
            count *= d
        if count > self._capacity:
            self._capacity = count
            self._data_storage = torch.zeros(count, dtype=self.dtype, device=self.device)
            self._diff_storage = torch.zeros(count, dtype=self.dtype, device=self.device)
        self.shape = shape
        if self._capacity:
            self._data = self._data_storage[:count].view(shape)
            self._diff = self._diff_storage[:count].view(shape)

    def reshape_like(self, other: "Blob"):
        self.reshape(other.shape)

    @property
    def num_axes(self) -> int:
        return len(self.shape)

    def count(self, start: int = 0, end: int | None = None) -> int:
        end = self.num_axes if end is None else end
        n = 1
        for d in self.shape[start:end]:
            n *= d
        return n

    def canonical_axis_index(self, axis: int) -> int:
        """Blob::CanonicalAxisIndex: negative axes count from the end."""
        check_ge(
            axis,
            -self.num_axes,
            "axis_index",
            "-num_axes()",
            f"axis {axis} out of range for {self.num_axes}-D Blob with shape {self.shape_string()}",
        )
        check_lt(
            axis,
            self.num_axes,
            "axis_index",
            "num_axes()",
            f"axis {axis} out of range for {self.num_axes}-D Blob with shape {self.shape_string()}",
        )
        return axis + self.num_axes if axis < 0 else axis

    def shape_string(self) -> str:
        return shape_string(self.shape)

    def share_data(self, other: "Blob"):
        """Blob::ShareData: this blob's data is the other's memory (Flatten, Reshape)."""
        check_le(self.count(), other.count(), "count_", "other.count()")
        self._data_storage = other._data_storage
        self._data = other._data_storage[: self.count()].view(self.shape) if other._capacity else None

    def share_diff(self, other: "Blob"):
        """Blob::ShareDiff: writing this diff writes the other's."""
        check_le(self.count(), other.count(), "count_", "other.count()")
        self._diff_storage = other._diff_storage
        self._diff = other._diff_storage[: self.count()].view(self.shape) if other._capacity else None

    def update(self):
        """Blob::Update: data -= diff."""
        self.data.sub_(self.diff)

    def __repr__(self):
        return f"Blob({self.shape})"


def shape_string(shape) -> str:
    """Blob::shape_string: each dim and a space, then the count: "2 3 4 (24)", and "(1)" for 0-D."""
    return "".join(f"{d} " for d in shape) + f"({math.prod(shape)})"
