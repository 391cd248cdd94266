"""Test setup for the model package: one CPU thread (the test machine is shared) and a fixed seed."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def _single_thread_session():
    """Module- and session-scoped fixtures (the training run, generated clips) run before the per-test fixture
    below, so the session is single-threaded too (two threads on a busy 2-core machine are several times slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _single_thread_and_seed():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


# ------------------------------------------------------------------------------------------------------------
# One tiny training run per test session, shared by test_train.py and test_sample.py (nothing is cached across
# sessions: it lives in pytest's tmp_path_factory).

# One scene, one start position, four action patterns: the same first frame must become four different clips, so
# the model has to read the actions. Shards hold 17-frame clips; the run trains on their first 9 frames (3 latent
# frames), which also exercises trimming.
TRAIN_TEXTURES = (0,)
TRAIN_STARTS = 1
TRAIN_ACTIONS = ("idle", "right", "left", "forward")
TRAIN_FRAMES = 9
# The tiny preset with a smaller batch (the 4 clips), a higher learning rate and enough steps to overfit them on
# one CPU thread (about a minute and a half for the VAE warm-up, the latent cache and the DiT together).
TRAIN_OVERRIDES: dict = dict(num_frames=TRAIN_FRAMES, batch_size=4, lr=1e-2, max_steps=1200, val_every=200,
                             log_every=20, ckpt_every=600)


@pytest.fixture(scope="session")
def synthetic_clips():
    from tests.model.synthetic_world import make_clips

    return make_clips(TRAIN_TEXTURES, TRAIN_STARTS, TRAIN_ACTIONS, num_frames=17, height=64, width=112)


@pytest.fixture(scope="session")
def synthetic_shards(tmp_path_factory, synthetic_clips):
    from tests.model.synthetic_world import write_synthetic_shards

    return write_synthetic_shards(tmp_path_factory.mktemp("shards") / "synthetic", synthetic_clips)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, synthetic_shards):
    """The tiny preset trained on the synthetic world: VAE warm-up, latent cache, DiT (see TRAIN_OVERRIDES)."""
    from model.train import get_train_config, train

    cfg = get_train_config("tiny", **TRAIN_OVERRIDES)
    return train(cfg, synthetic_shards, tmp_path_factory.mktemp("run") / "tiny", progress=False)
