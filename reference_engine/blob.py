"""A Caffe Blob: data and diff of one shape, held as torch tensors.

Caffe: include/caffe/blob.hpp, src/caffe/blob.cpp.
"""

import math

import torch

from .checks import check_ge, check_le, check_lt


class Blob:
    def __init__(self, shape=(), dtype=torch.float32, device="cpu"):
        self.dtype = dtype
        self.device = device
        self.shape = []
        self._capacity = 0
        self.data = torch.zeros(0, dtype=dtype, device=device)
        self.diff = torch.zeros(0, dtype=dtype, device=device)
        self.reshape(list(shape))

    def reshape(self, shape):
        """Blob::Reshape: memory is reallocated (zeroed) only when the count grows.

        Growing loses what the diff held, loss weights included (docs/semantics.md §3.3).
        """
        shape = [int(d) for d in shape]
        for d in shape:
            check_ge(d, 0, "shape[i]", "0")
        count = 1
        for d in shape:
            count *= d
        if count > self._capacity:
            self._capacity = count
            self._data_storage = torch.zeros(count, dtype=self.dtype, device=self.device)
            self._diff_storage = torch.zeros(count, dtype=self.dtype, device=self.device)
        self.shape = shape
        self.data = self._data_storage[:count].view(shape)
        self.diff = self._diff_storage[:count].view(shape)

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
        self.data = other._data_storage[: self.count()].view(self.shape)

    def share_diff(self, other: "Blob"):
        """Blob::ShareDiff: writing this diff writes the other's."""
        check_le(self.count(), other.count(), "count_", "other.count()")
        self._diff_storage = other._diff_storage
        self.diff = other._diff_storage[: self.count()].view(self.shape)

    def update(self):
        """Blob::Update: data -= diff."""
        self.data.sub_(self.diff)

    def __repr__(self):
        return f"Blob({self.shape})"


def shape_string(shape) -> str:
    """Blob::shape_string: each dim and a space, then the count: "2 3 4 (24)", and "(1)" for 0-D."""
    return "".join(f"{d} " for d in shape) + f"({math.prod(shape)})"
