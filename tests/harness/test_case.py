"""Result and LayerRecord read back from their wire form (Result.meta(), Result.arrays()): every
field and every array lands where it was, however the reading is sped up."""

import numpy as np
import pytest

from harness.case import LayerRecord, Outcome, Result

RECORD = LayerRecord(
    name="conv/1",
    type="Convolution",
    bottoms=("data",),
    tops=("conv/1",),
    logged_need_backward=True,
    need_backward=False,
    bottom_need_backward=(True,),
    param_propagate_down=(True, False),
    param_lr=(1.0, 2.0),
    param_decay=(1.0, 0.0),
    bottom_written=(False,),
)


def blob(value: float) -> np.ndarray:
    return np.full((2, 3), value, np.float32)


def test_layer_record_reads_back_every_field():
    read = LayerRecord.from_json(RECORD.to_json())
    assert read == RECORD
    assert hash(read) == hash(RECORD)
    assert {k: type(v) for k, v in vars(read).items()} == {k: type(v) for k, v in vars(RECORD).items()}


def test_layer_record_fields_left_out_take_their_defaults_and_unknown_ones_are_ignored():
    read = LayerRecord.from_json(
        {"name": "relu", "type": "ReLU", "bottoms": ["ip"], "tops": ["ip"], "new_field": 1}
    )
    assert read == LayerRecord("relu", "ReLU", ("ip",), ("ip",))


def test_layer_record_without_a_required_field_is_refused():
    with pytest.raises(TypeError, match="tops"):
        LayerRecord.from_json({"name": "relu", "type": "ReLU", "bottoms": ["ip"]})


def test_result_reads_back_every_array_where_it_was():
    result = Result(
        engine="caffe",
        outcome=Outcome.OK,
        layers=(RECORD,),
        outputs=("loss",),
        losses=(0.5, 0.25, 0.125),
        blob_data={"data": blob(1), "conv/1": blob(2)},
        blob_diff={"data": blob(3), "conv/1": blob(4)},
        # Eleven blobs: index 10 sorts after 2 as a number, before it as text.
        param_diff={"conv/1": tuple(blob(10 + i) for i in range(11)), "ip": (blob(30),)},
        param_history=(
            {"conv/1": (blob(40), blob(41)), "ip": (blob(42),)},
            {"conv/1": (blob(50), blob(51)), "ip": (blob(52),)},
        ),
        info={"caffe_s": 0.001},
    )
    arrays = result.arrays()
    # Keys no reader asks for: a snapshot past the iterations, and keys without a kind.
    arrays.update({"iter3/ip/0": blob(60), "data": blob(61), "loss/0": blob(62)})
    read = Result.from_parts(result.meta(), arrays)
    assert read.meta() == result.meta()
    assert read.arrays().keys() == result.arrays().keys()
    assert list(read.arrays()) == list(result.arrays())
    for key, value in result.arrays().items():
        assert read.arrays()[key] is value, key
