"""Hypothesis profiles for the fuzz tests: bounded budgets in CI, bigger ones on request."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# deadline=None: a shared 2-core machine makes per-example timings meaningless.
settings.register_profile(
    "remit-ci",
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile(
    "remit-deep",
    max_examples=5000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile(os.environ.get("REMIT_HYPOTHESIS_PROFILE", "remit-ci"))
