"""Run a Case's net once (forward and backward) on the reference engine, in process.

Only what these tests need to show that a generated net builds and runs; the harness's
reference engine is what compares anything.
"""

import torch

from reference_engine.net import Net, read_net_param


def run_once(case):
    param, _ = read_net_param(case.net, case.phase, case.level, case.stages)
    net = Net(param, dtype=torch.float64)
    for name, array in case.inputs.items():
        net.blob(name).data.copy_(torch.from_numpy(array))
    for name, layer in zip(net.layer_names, net.layers):
        for blob, array in zip(layer.blobs, case.params.get(name, ())):
            blob.data.copy_(torch.from_numpy(array).reshape(blob.data.shape))
    loss = net.forward()
    net.backward()
    return net, loss
