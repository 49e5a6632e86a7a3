"""The conformance suite: pytest tests that check an engine against real Caffe (or against the
reference engine), feature by feature.

    pytest --pyargs conformance_suite --engine mypkg.module:Engine [--against caffe|reference]

One test per feature, each a Hypothesis test drawing the cases of that feature
(harness.generate.cases): the layer list's flags (test_flags.py), each layer type's forward
(test_forward.py) and backward (test_backward.py), each solver type (test_solvers.py). The
options are registered by plugin.py, the session (engines, example database, bundles, known
gaps) lives in conftest.py and session.py, what each test checks in features.py and how in
check.py. docs/suite.md is the user's guide.
"""
