"""Test-wide settings: Hypothesis profiles and torch's thread count.

Profiles: ``dev`` (default, quick), ``ci`` (derandomized, so CI is reproducible),
``nightly`` (many examples). Choose with HYPOTHESIS_PROFILE; CI sets ``ci``.
"""

import os

import torch
from hypothesis import HealthCheck, settings

# Tiny tensors: torch's thread pool costs far more than it saves on a 2-core machine.
torch.set_num_threads(1)

settings.register_profile("dev", max_examples=30, deadline=None)
settings.register_profile(
    "ci",
    max_examples=50,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "nightly", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
