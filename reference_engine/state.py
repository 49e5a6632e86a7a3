"""Which layers a NetState keeps. Caffe: Net::FilterNet and Net::StateMeetsRule (net.cpp)."""

from .checks import check


def state_meets_rule(state, rule) -> bool:
    """A rule is met when every condition it sets holds (phase, level bounds, stages)."""
    if rule.HasField("phase") and rule.phase != state.phase:
        return False
    if rule.HasField("min_level") and state.level < rule.min_level:
        return False
    if rule.HasField("max_level") and state.level > rule.max_level:
        return False
    if any(stage not in state.stage for stage in rule.stage):
        return False
    return not any(stage in state.stage for stage in rule.not_stage)


def layer_included(layer, state) -> bool:
    """No rules: kept. Only exclude rules: kept unless one is met. Only include rules: kept if one is met."""
    check(
        len(layer.include) == 0 or len(layer.exclude) == 0,
        "layer_param.include_size() == 0 || layer_param.exclude_size() == 0",
        "Specify either include rules or exclude rules; not both.",
    )
    if layer.include:
        return any(state_meets_rule(state, rule) for rule in layer.include)
    return not any(state_meets_rule(state, rule) for rule in layer.exclude)


def filter_net(param):
    """A copy of the NetParameter holding only the layers its own ``state`` keeps."""
    filtered = type(param)()
    filtered.CopyFrom(param)
    del filtered.layer[:]
    for layer in param.layer:
        if layer_included(layer, param.state):
            filtered.layer.add().CopyFrom(layer)
    return filtered
