"""Run a Case on the reference engine, in process: one forward and backward, then the
solver's iterations if the case has a solver.

Only what these tests need to show that a generated case builds and runs; comparing
engines is the harness's job.
"""

import torch
from google.protobuf import text_format

from reference_engine import caffe_pb2
from reference_engine.net import Net, read_net_param
from reference_engine.solvers import make_solver


def run_forward(case):
    """Returns (net, loss) after the first forward."""
    param, _ = read_net_param(case.net, case.phase, case.level, case.stages)
    net = Net(param, dtype=torch.float64)
    for name, array in case.inputs.items():
        net.blob(name).data.copy_(torch.from_numpy(array))
    for name, layer in zip(net.layer_names, net.layers):
        for blob, array in zip(layer.blobs, case.params.get(name, ())):
            blob.data.copy_(torch.from_numpy(array).reshape(blob.data.shape))
    return net, net.forward()


def run_once(case):
    """Returns (net, loss of the first forward)."""
    net, loss = run_forward(case)
    net.backward()
    if case.solver is not None:
        solver = make_solver(text_format.Parse(case.solver, caffe_pb2.SolverParameter()), net)
        solver.step(case.iterations)
    return net, loss
