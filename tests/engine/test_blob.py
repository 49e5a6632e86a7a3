"""Blob: the text Caffe's CHECKs print about shapes (blob.cpp, Blob::shape_string)."""

from reference_engine.blob import shape_string


def test_shape_string_puts_a_space_after_each_dim():
    assert shape_string([2, 3, 4]) == "2 3 4 (24)"


def test_shape_string_of_a_0d_blob_is_its_count_alone():
    # The message Caffe prints for an axis of a scalar blob ends "with shape (1)".
    assert shape_string([]) == "(1)"
