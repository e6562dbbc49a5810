"""Hypothesis profiles for the unit tests: `default` for `make test`, `mutation` (fewer examples)
for `make mutants`, where each surviving mutant runs every test that executes its function."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from mljob import schemas, validation

settings.register_profile(
    "default", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "mutation", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="session", autouse=True)
def _fresh_caches() -> None:
    """Under `make mutants` each mutant's tests run in a process forked from one that already
    ran them unmutated: results the core memoizes (the parsed upstream schemas here; validate()'s
    cache before each test, below) would hide the mutant. Once per session: nothing to undo in a
    normal run."""
    mutant = os.environ.get("MUTANT_UNDER_TEST", "")
    if mutant.startswith("mljob.schemas."):
        for name in dir(schemas):
            cached = getattr(schemas, name)
            if callable(getattr(cached, "cache_clear", None)):
                cached.cache_clear()


@pytest.fixture(autouse=True)
def _fresh_validation_per_test() -> None:
    """Under `make mutants`, validate()'s cache is also cleared before each test: mutmut maps
    each test to the functions it executes (its "stats" run, all tests in one process), and a
    test whose manifest an earlier test had validated executed no validation function, so it
    was never run against validation's mutants. Nothing to do in a normal run."""
    if os.environ.get("MUTANT_UNDER_TEST"):
        validation._validate_json.cache_clear()
