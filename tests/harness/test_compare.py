"""The comparison: exact flags, tolerant arrays, outcome and message, blame order.

Results are built by hand here: these tests claim nothing about Caffe.
"""

import numpy as np

from harness.campaign.compare import TOLERANCES, Comparison, Mismatch, array_mismatch, compare
from harness.case import LayerRecord, Outcome, Result
from reference_engine.topology import AUTOMATIC_TOP

LAYERS = (
    LayerRecord("input", "Input", (), ("data",), False, False, (), (), (), ()),
    LayerRecord(
        "ip", "InnerProduct", ("data",), ("ip",), True, True, (False,), (True, True), (1.0, 1.0), (1.0, 1.0)
    ),
    LayerRecord("relu", "ReLU", ("ip",), ("ip",), True, True, (True,), (), (), ()),
    LayerRecord("loss", "EuclideanLoss", ("ip", "data"), ("loss",), True, True, (True, False), (), (), ()),
)


def result(engine="reference", **changes):
    base = {
        "engine": engine,
        "layers": LAYERS,
        "outputs": ("loss",),
        "losses": (1.5,),
        "blob_data": {"data": np.ones((2, 3)), "ip": np.arange(4.0).reshape(2, 2), "loss": np.float64(1.5)},
        "blob_diff": {"data": np.zeros((2, 3)), "ip": np.full((2, 2), 0.5), "loss": np.float64(1.0)},
        "param_diff": {"ip": (np.ones((2, 3)), np.ones(2))},
    }
    base.update(changes)
    return Result(**base)


def test_identical_results_agree():
    assert compare(result(), result("caffe")).agree


def test_float32_rounding_is_within_tolerance():
    data = dict(result().blob_data)
    data["ip"] = (data["ip"] * (1 + 3e-7)).astype(np.float32)
    assert compare(result(), result("caffe", blob_data=data)).agree


def test_forward_mismatch_blames_the_last_writer_and_names_both_sides():
    data = dict(result().blob_data)
    data["ip"] = data["ip"] + np.array([[0, 0], [0, 0.25]])
    c = compare(result(), result("caffe", blob_data=data))
    assert c.first.kind == "forward" and c.first.layer == "relu"
    assert "max abs err 0.25 at (1, 1): reference=3 caffe=3.25" in c.first.message


def test_a_blobs_final_diff_is_blamed_on_the_last_layer_to_write_it():
    # relu runs in place on ip: its backward, the last on ip, leaves ip's final diff.
    diff = dict(result().blob_diff)
    diff["ip"] = diff["ip"] * 2
    c = compare(result(), result("caffe", blob_diff=diff))
    assert (c.first.kind, c.first.layer, c.first.quantity) == ("bottom_diff", "relu", "bottom 0 diff")


# An in-place chain: ip writes "ip", relu and scale rewrite it in place, loss reads it.
IN_PLACE_CHAIN = (
    LAYERS[:3]
    + (LayerRecord("scale", "Scale", ("ip",), ("ip",), True, True, (True,), (), (), ()),)
    + LAYERS[3:]
)


def chain(engine="reference", **changes):
    """The chain's result, with each in-place layer's blob as it reads it."""
    base = {
        "layers": IN_PLACE_CHAIN,
        "in_place_data": {"relu": np.arange(4.0).reshape(2, 2), "scale": np.arange(4.0).reshape(2, 2)},
        "in_place_diff": {"scale": np.full((2, 2), 0.5), "relu": np.full((2, 2), 0.5)},
    }
    return result(engine, **{**base, **changes})


def test_an_in_place_chain_is_blamed_on_its_first_layer_whose_output_diverges():
    wrong = np.arange(4.0).reshape(2, 2) + 1  # as relu left it; scale and the final blob follow
    data = {**chain().blob_data, "ip": wrong}
    c = compare(
        chain(), chain("caffe", in_place_data={**chain().in_place_data, "scale": wrong}, blob_data=data)
    )
    assert (c.first.kind, c.first.layer) == ("forward", "relu")
    assert "as scale reads it in place" in c.first.message
    # The same final data with no record of the chain: only its last writer is seen.
    plain = compare(result(layers=IN_PLACE_CHAIN), result("caffe", layers=IN_PLACE_CHAIN, blob_data=data))
    assert (plain.first.kind, plain.first.layer) == ("forward", "scale")


def test_an_in_place_chains_backward_is_blamed_on_the_first_layer_to_run_that_diverges():
    # loss runs first and writes ip's diff; scale reads it; scale's own output is what relu reads.
    wrong = np.full((2, 2), 0.75)
    diff = {**chain().blob_diff, "ip": wrong}
    c = compare(
        chain(), chain("caffe", in_place_diff={"scale": np.full((2, 2), 0.5), "relu": wrong}, blob_diff=diff)
    )
    assert (c.first.kind, c.first.layer) == ("bottom_diff", "scale")
    assert "as relu reads it in place" in c.first.message


def test_a_wrong_update_at_iteration_1_is_blamed_on_the_update_not_on_the_next_loss():
    initial = {"ip": (np.zeros((2, 3)), np.zeros(2))}
    after = [{"ip": (np.full((2, 3), -0.1 * k), np.full(2, -0.1 * k))} for k in (1, 2)]
    wrong = [{"ip": (np.full((2, 3), -0.2 * k), np.full(2, -0.2 * k))} for k in (1, 2)]
    ref = result(losses=(1.5, 1.5, 1.2), param_history=tuple(after))
    other = result("caffe", losses=(1.5, 1.5, 0.9), param_history=tuple(wrong))
    c = compare(ref, other, initial)
    assert (c.first.kind, c.first.layer, c.first.quantity) == ("update", "ip", "param 0 update")
    assert "at iteration 1" in c.first.message
    kinds = [(m.kind, m.message.split(":")[0]) for m in c.mismatches]
    assert kinds.index(("loss", "loss of solver iteration 2")) > kinds.index(
        ("update", "ip param 0 update at iteration 1")
    )


def test_arrays_made_before_a_failure_are_compared_before_the_outcomes():
    # The engine under test makes a wrong ip, then aborts at the loss; Caffe runs to the end.
    made = {"data": np.ones((2, 3)), "ip": np.arange(4.0).reshape(2, 2) * 3}
    failed = result(
        outcome=Outcome.ABORTED,
        stage="forward",
        message="shapes",
        blob_data=made,
        blob_diff={},
        param_diff={},
        losses=(),
    )
    c = compare(failed, result("caffe"))
    assert [m.kind for m in c.mismatches] == ["forward", "outcome"]
    assert c.first.layer == "relu"  # the last writer of ip, which both made
    # What only one engine made is not a mismatch: the outcomes say why.
    same = compare(replace_data(failed, {"data": np.ones((2, 3))}), result("caffe"))
    assert [m.kind for m in same.mismatches] == ["outcome"]
    assert same.first.quantity.startswith("aborted/ok at forward: shapes")


def replace_data(r, data):
    import dataclasses

    return dataclasses.replace(r, blob_data=data)


def test_an_outcomes_quantity_keeps_the_message_shape_without_names_or_numbers():
    a = {"outcome": Outcome.REFUSED, "stage": "init", "layers": ()}
    one = compare(result(**a, message="Check failed: count (6 vs. 12) layer 'l3'"), result("caffe"))
    two = compare(result(**a, message="Check failed: count (8 vs. 2) layer 'l7'"), result("caffe"))
    assert (
        one.first.quantity
        == two.first.quantity
        == "refused/ok at init: Check failed: count (N vs. N) layer '…'"
    )


def test_flags_are_exact():
    layers = list(LAYERS)
    layers[1] = LayerRecord(
        "ip", "InnerProduct", ("data",), ("ip",), True, True, (True,), (True, True), (1.0, 1.0), (1.0, 1.0)
    )
    c = compare(result(), result("caffe", layers=tuple(layers)))
    assert [m.kind for m in c.mismatches] == ["flags"]
    assert c.first.message == "ip bottom_need_backward: reference=[False] caffe=[True]"


def test_a_different_layer_list_stops_the_comparison():
    layers = LAYERS[:2] + (LayerRecord("relu", "TanH", ("ip",), ("ip",)),) + LAYERS[3:]
    c = compare(result(), result("caffe", layers=layers))
    assert [m.kind for m in c.mismatches] == ["layers"]


def test_outcomes_compare_kind_stage_and_message():
    refused = {
        "outcome": Outcome.REFUSED,
        "stage": "init",
        "message": "Check failed: x (1 vs. 2) msg ",
        "layers": (),
    }
    assert compare(result(**refused), result("caffe", **refused)).agree
    other = dict(refused, message="Check failed: x (1 vs. 3) msg ")
    assert not compare(result(**refused), result("caffe", **other)).agree
    assert compare(result(), result("caffe", **refused)).first.kind == "outcome"


def test_unknown_type_messages_ignore_the_list_of_known_types():
    a = {
        "outcome": Outcome.REFUSED,
        "stage": "init",
        "layers": (),
        "message": "Check failed: registry.count(type) == 1 (0 vs. 1) Unknown layer type: Foo (known types: A, B)",
    }
    b = dict(a, message=a["message"].replace("A, B", "A, B, C"))
    assert compare(result(**a), result("caffe", **b)).agree


def test_unsupported_is_skipped_not_a_verdict():
    c = compare(result(outcome=Outcome.UNSUPPORTED, message="reads files"), result("caffe"))
    assert c.skipped and c.agree and c.verdict == "skipped"


def test_the_verdict_of_a_comparison():
    assert compare(result(), result("caffe")).verdict == "agree"
    assert compare(result(), result("caffe", losses=(2.5,))).verdict == "disagree"


def test_a_mismatch_and_a_comparison_round_trip_through_json():
    import json

    mismatch = Mismatch("forward", "relu", "relu top 'ip' data: max abs err 0.25", 0.25)
    assert Mismatch.from_json(json.loads(json.dumps(mismatch.to_json()))) == mismatch
    comparison = Comparison([mismatch, Mismatch("outcome", None, "outcome: reference=ok caffe=crashed")])
    assert Comparison.from_json(json.loads(json.dumps(comparison.to_json()))) == comparison


def test_the_reference_engines_automatic_tops_are_not_wiring():
    """Caffe names a top that a layer gets without declaring it "(automatic)"; the comparison
    knows that name by the reference engine's constant."""
    layers = LAYERS[:3] + (
        LayerRecord(
            "loss",
            "EuclideanLoss",
            ("ip", "data"),
            ("loss", AUTOMATIC_TOP),
            True,
            True,
            (True, False),
            (),
            (),
            (),
        ),
    )
    assert compare(result(layers=layers), result("caffe")).agree


def test_nan_and_infinity_must_match_exactly():
    tol = TOLERANCES["forward"]
    assert array_mismatch(np.array([np.nan, 1.0]), np.array([np.nan, 1.0]), tol)[0] is None
    assert "NaN at (0,)" in array_mismatch(np.array([np.nan, 1.0]), np.array([0.0, 1.0]), tol)[0]
    assert "infinity" in array_mismatch(np.array([np.inf]), np.array([-np.inf]), tol)[0]
    assert array_mismatch(np.array([np.inf, 2.0]), np.array([np.inf, 2.0]), tol)[0] is None


def test_cancellation_is_judged_by_the_size_of_the_terms():
    """A bottom diff that cancels to ~0 (BatchNorm under a loss on its sum) carries float32
    rounding of the size of its top diff, not of itself."""
    diff = dict(result().blob_diff)
    ref_diff = dict(diff, ip=np.zeros((2, 2)))
    caffe_diff = dict(diff, ip=np.full((2, 2), 3e-5))
    assert compare(result(blob_diff=ref_diff), result("caffe", blob_diff=caffe_diff)).agree
    caffe_diff = dict(diff, ip=np.full((2, 2), 3e-2))
    assert not compare(result(blob_diff=ref_diff), result("caffe", blob_diff=caffe_diff)).agree


def test_solver_updates_are_judged_by_their_own_size():
    """A wrong update rule shows even when the learning rate makes the update tiny next to w."""
    w0 = {"ip": (np.ones((2, 3)), np.ones(2))}
    good = ({"ip": (np.ones((2, 3)) - 1e-4, np.ones(2) - 1e-4)},)
    bad = ({"ip": (np.ones((2, 3)) - 2e-4, np.ones(2) - 1e-4)},)
    assert compare(result(param_history=good), result("caffe", param_history=good), w0).agree
    c = compare(result(param_history=good), result("caffe", param_history=bad), w0)
    assert c.first.kind == "update" and "ip param 0 update at iteration 1" in c.first.message
    # Judged against the weights alone, the same difference would pass.
    assert compare(result(param_history=good), result("caffe", param_history=bad)).agree


def test_an_update_from_a_gradient_of_rounding_is_not_compared():
    """A bias that BatchNorm takes out again has a gradient of rounding only: AdaGrad turns
    Caffe's into a full step and the reference's into none. Its update says nothing."""
    w0 = {"ip": (np.ones((2, 3)), np.ones(2))}
    rounding = {"ip": (np.ones((2, 3)), np.array([1e-17, -2e-17]))}
    caffe_rounding = {"ip": (np.ones((2, 3)), np.array([3e-9, 1e-9]))}
    still = ({"ip": (np.ones((2, 3)) - 1e-4, np.ones(2))},)
    full_step = ({"ip": (np.ones((2, 3)) - 1e-4, np.ones(2) - 0.01)},)
    c = compare(
        result(param_diff=rounding, param_history=still),
        result("caffe", param_diff=caffe_rounding, param_history=full_step),
        w0,
    )
    assert c.agree, c.summary()
    # The weights' own update is still compared ...
    wrong = ({"ip": (np.ones((2, 3)) - 2e-4, np.ones(2) - 0.01)},)
    c = compare(
        result(param_diff=rounding, param_history=still),
        result("caffe", param_diff=caffe_rounding, param_history=wrong),
        w0,
    )
    assert c.first.kind == "update" and "ip param 0 update" in c.first.message
    # ... and so is the update of a param no gradient reaches (its diff exactly 0): its decay.
    unreached = {"ip": (np.ones((2, 3)), np.zeros(2))}
    c = compare(
        result(param_diff=unreached, param_history=still),
        result("caffe", param_diff=unreached, param_history=full_step),
        w0,
    )
    assert c.first.kind == "update" and "ip param 1 update" in c.first.message


CANCELLING = (
    LayerRecord("input", "Input", (), ("data",), False, False, (), (), (), ()),
    LayerRecord("sum", "Reduction", ("data",), ("sum",), False, False, (False,), (), (), ()),
    LayerRecord("elu", "ELU", ("sum",), ("elu",), False, False, (False,), (), (), ()),
)


def test_a_value_carries_the_rounding_of_what_came_before_it():
    """A Reduction of values near 3 that cancels to about 0 passes their rounding on: the ELU
    after it reads values of 1e-6 that carry an error of 1e-6, and is judged by the 3s."""

    def chain(engine, total):
        data = np.array([3.0, -1.0, -2.0])
        return result(
            engine,
            layers=CANCELLING,
            outputs=("elu",),
            losses=(0.0,),
            param_diff={},
            blob_data={"data": data, "sum": np.float64(total), "elu": np.float64(total)},
            blob_diff={"data": np.zeros(3), "sum": np.float64(0), "elu": np.float64(0)},
        )

    assert compare(chain("reference", 4e-15), chain("caffe", -1.4e-6)).agree
    c = compare(chain("reference", 4e-15), chain("caffe", -1e-2))
    assert c.first.kind == "forward" and c.first.layer == "sum"


def test_a_bias_gradient_of_rounding_is_known_by_its_incoming_diffs():
    """Embed on indices 0 sums its rows' incoming diffs (+0.03 and -0.03): its gradient is 0
    in exact arithmetic and rounding in Caffe, although its bottom values are all 0."""
    layers = (
        LayerRecord("input", "Input", (), ("index",), False, False, (), (), (), ()),
        LayerRecord("embed", "Embed", ("index",), ("embed",), True, False, (False,), (True,), (1.0,), (1.0,)),
    )
    w0 = {"embed": (np.ones((1, 4)),)}

    def embedded(engine, gradient, weights):
        return result(
            engine,
            layers=layers,
            outputs=("embed",),
            losses=(0.0,),
            blob_data={"index": np.zeros(2), "embed": np.ones((2, 4))},
            blob_diff={"index": np.zeros(2), "embed": np.array([[0.03] * 4, [-0.03] * 4])},
            param_diff={"embed": (gradient,)},
            param_history=({"embed": (weights,)},),
        )

    reference = embedded("reference", np.zeros((1, 4)), np.ones((1, 4)))
    assert compare(reference, embedded("caffe", np.full((1, 4), 7e-9), np.ones((1, 4)) - 7e-4), w0).agree
    c = compare(reference, embedded("caffe", np.full((1, 4), 1e-3), np.ones((1, 4)) - 7e-4), w0)
    assert not c.agree
