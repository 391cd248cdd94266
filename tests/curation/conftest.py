import shutil

import pytest

from tests.curation.helpers import make_fake_episodes


@pytest.fixture(scope="session")
def fake_episodes(tmp_path_factory):
    """Four FakeWorld episodes of 60 frames (64x48, 25 fps); read-only: copy before changing them."""
    d = tmp_path_factory.mktemp("fake") / "episodes"
    make_fake_episodes(d, n=2, frames=60, scenes=("fake", "other"))
    return d


@pytest.fixture
def episodes_copy(fake_episodes, tmp_path):
    d = tmp_path / "episodes"
    shutil.copytree(fake_episodes, d)
    return d
