"""Shared fixtures of the whole suite."""

import pytest


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray (2 CPUs) for every test of the Ray engines: playmill's ``ray_session`` uses a Ray that is
    already initialised as it is, so the tests pay for starting Ray once."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()
