"""Data-reading layers: producers that never need backward.

Caffe: base_data_layer.cpp, data_layer.cpp, image_data_layer.cpp, hdf5_data_layer.cpp,
window_data_layer.cpp, memory_data_layer.cpp, dummy_data_layer.cpp. The reference
engine reads no database or file: the net analysis needs only their blob counts,
and a numeric run replaces them by Input layers of the shape they would produce
(harness/explain/user_nets.py). DummyData with constant fillers is computed as Caffe does.
"""

from ..checks import Unsupported, check
from ..fillers import fill
from ..layer import Layer, register_layer


class DataReadingLayer(Layer):
    is_source = True
    reads_files = True
    exact_num_bottom_blobs = 0
    min_top_blobs = 1
    max_top_blobs = 2

    def layer_setup(self, bottom, top):
        raise Unsupported(
            f"layer '{self.param.name}' ({self.type}) reads data from files; replace it by an Input layer "
            "(the check and explain commands do this from its batch and crop settings)"
        )

    def backward(self, top, propagate_down, bottom):
        pass  # BaseDataLayer: Backward_cpu does nothing


@register_layer("Data")
class DataLayer(DataReadingLayer):
    pass


@register_layer("ImageData")
class ImageDataLayer(DataReadingLayer):
    pass


@register_layer("HDF5Data")
class HDF5DataLayer(DataReadingLayer):
    max_top_blobs = -1


@register_layer("WindowData")
class WindowDataLayer(DataReadingLayer):
    min_top_blobs = -1
    max_top_blobs = -1
    exact_num_top_blobs = 2


@register_layer("MemoryData")
class MemoryDataLayer(DataReadingLayer):
    min_top_blobs = -1
    max_top_blobs = -1
    exact_num_top_blobs = 2


@register_layer("DummyData")
class DummyDataLayer(Layer):
    """Tops filled once at setup when every filler is constant; any other filler redraws each
    forward from Caffe's RNG, which no other engine can reproduce."""

    is_source = True
    exact_num_bottom_blobs = 0
    min_top_blobs = 1

    def layer_setup(self, bottom, top):
        p = self.param.dummy_data_param
        num_fillers = len(p.data_filler)
        check(
            num_fillers in (0, 1, len(top)),
            "num_data_filler == 0 || num_data_filler == 1 || num_data_filler == num_top",
            "Number of data fillers must be 0, 1 or equal to the number of tops: "
            f"{len(top)}; you specified {num_fillers} data fillers.",
        )
        for j, blob in enumerate(top):
            blob.reshape(self._shape(p, j, len(top)))
            filler = p.data_filler[0 if num_fillers == 1 else j] if num_fillers else None
            if filler is not None and filler.type != "constant":
                raise Unsupported(
                    f"DummyData '{self.param.name}': filler '{filler.type}' redraws from "
                    "Caffe's RNG at every forward; use an Input layer"
                )
            if filler is not None:
                fill(blob, filler)
            else:
                blob.data.zero_()

    @staticmethod
    def _shape(p, j, num_top):
        if p.shape:
            shape = p.shape[0 if len(p.shape) == 1 else j]
            return list(shape.dim)
        pick = lambda values: values[0 if len(values) == 1 else j] if values else 1
        return [pick(p.num), pick(p.channels), pick(p.height), pick(p.width)]

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        pass

    def backward(self, top, propagate_down, bottom):
        pass
