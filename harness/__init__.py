"""caffe-conformance: differential testing of Caffe training semantics."""

from .errors import HarnessError

__all__ = ["HarnessError"]
