"""Tile. Caffe: src/caffe/layers/tile_layer.cpp."""

from ..checks import check, check_gt
from ..layer import Layer, register_layer


@register_layer("Tile")
class TileLayer(Layer):
    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def reshape(self, bottom, top):
        p = self.param.tile_param
        self.axis = bottom[0].canonical_axis_index(p.axis)
        check(p.HasField("tiles"), "tile_param.has_tiles()", "Number of tiles must be specified")
        self.tiles = p.tiles
        check_gt(self.tiles, 0, "tiles_", "0", "Number of tiles must be positive.")
        shape = list(bottom[0].shape)
        shape[self.axis] *= self.tiles
        top[0].reshape(shape)
        self.outer_dim = bottom[0].count(0, self.axis)
        self.inner_dim = bottom[0].count(self.axis)

    def forward(self, bottom, top):
        x = bottom[0].data.reshape(self.outer_dim, 1, self.inner_dim)
        top[0].data.view(self.outer_dim, self.tiles, self.inner_dim).copy_(x.expand(-1, self.tiles, -1))

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        # The first tile is copied, the others added in order.
        dy = top[0].diff.view(self.outer_dim, self.tiles, self.inner_dim)
        dx = bottom[0].diff.view(self.outer_dim, self.inner_dim)
        dx.copy_(dy[:, 0])
        for t in range(1, self.tiles):
            dx.add_(dy[:, t])
