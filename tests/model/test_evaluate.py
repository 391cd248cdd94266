"""model.evaluate and model.metrics: the metrics' properties, optional LPIPS/FVD on weights made here, action
scripts, and evaluate_episode with a perfect world model (the sandbox itself) against a frozen one."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from model.evaluate import (
    ACTION_CLASSES, EvalConfig, action_script, composite_script, controllability, evaluate_episode, loop_script,
    summarise,
)
from model.metrics import LPIPS, flicker_score, fvd, psnr, ssim, warp_error

KEYS = ("w", "s", "a", "d", "space", "shift", "ctrl", "lmb", "rmb")


def noise_image(seed=0, h=64, w=112):
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 4, w // 4, 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def test_frame_metrics_properties():
    a, b = noise_image(0), noise_image(1)
    assert psnr(a, a) == math.inf and ssim(a, a) == pytest.approx(1.0)
    noisy = np.clip(a.astype(int) + np.random.default_rng(2).normal(0, 10, a.shape), 0, 255).astype(np.uint8)
    assert 20 < psnr(a, noisy) < 35 and ssim(a, b) < ssim(a, noisy) < 1.0
    still = np.repeat(a[None], 5, axis=0)
    assert flicker_score(still) == 1.0 and flicker_score(np.stack([a, b, a])) < 0.9
    panning = np.stack([np.roll(a, 2 * i, axis=1) for i in range(5)])  # consecutive frames explained by motion
    popping = np.stack([noise_image(i) for i in range(5)])  # content that appears from nowhere
    assert warp_error(panning) < 0.5 * warp_error(popping)


def _alexnet_state(seed=0):
    g = torch.Generator().manual_seed(seed)
    state = {}
    for (cin, cout, k, _, _), idx in zip(LPIPS.CONVS, LPIPS.FEATURE_IDX):
        state[f"features.{idx}.weight"] = torch.randn(cout, cin, k, k, generator=g) * 0.05
        state[f"features.{idx}.bias"] = torch.zeros(cout)
        state[f"lin{LPIPS.FEATURE_IDX.index(idx)}.model.1.weight"] = torch.rand(1, cout, 1, 1, generator=g)
    return state


def test_lpips_runs_on_user_weights_and_names_what_is_missing(tmp_path):
    from safetensors.torch import save_file

    state = _alexnet_state()
    backbone = {k: v for k, v in state.items() if k.startswith("features")}
    heads = {k: v for k, v in state.items() if k.startswith("lin")}
    save_file(backbone, str(tmp_path / "alexnet.safetensors"))
    torch.save(heads, tmp_path / "lin.pth")
    lp = LPIPS(tmp_path / "alexnet.safetensors", tmp_path / "lin.pth")
    a, b = noise_image(0), noise_image(5)
    assert lp(a, a) == pytest.approx(0.0, abs=1e-9) and lp(a, b) > lp(a, a)
    with pytest.raises(KeyError, match="lin0.model.1.weight"):
        LPIPS(tmp_path / "alexnet.safetensors")


class _TinyI3D(torch.nn.Module):
    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = True, return_features: bool = True):
        return torch.stack([x.mean(dim=(1, 2, 3, 4)), x.std(dim=(1, 2, 3, 4)), x[:, 0].mean(dim=(1, 2, 3))], dim=1)


def test_fvd_with_a_torchscript_feature_extractor(tmp_path):
    path = tmp_path / "i3d.pt"
    torch.jit.script(_TinyI3D()).save(str(path))
    rng = np.random.default_rng(0)
    real = [rng.integers(0, 256, (5, 16, 16, 3), dtype=np.uint8) for _ in range(6)]
    dark = [(v // 4).astype(np.uint8) for v in real]
    assert fvd(real, real, path) == pytest.approx(0.0, abs=1e-6)
    assert fvd(real, dark, path) > 0.01


def test_action_scripts():
    kb, ms = action_script("forward_turn_right", 9, KEYS, turn_deg=3.0)
    assert kb[0].sum() == 0 and (kb[1:, 0] == 1).all() and (ms[1:, 1] == 3.0).all()
    kb, ms = action_script("look_down", 9, KEYS, look_deg=2.0)
    assert (ms[1:, 0] == -2.0).all() and not kb.any()
    kb, ms = composite_script(81, KEYS)
    assert kb[:, 0].any() and kb[:, 1].any() and (ms[:, 1] > 0).any() and (ms[:, 1] < 0).any()
    _, ms = loop_script("turn", 16, 21, KEYS)
    assert ms[:, 1].sum() == pytest.approx(360.0) and (ms[17:] == 0).all()
    kb, _ = loop_script("walk", 16, 17, KEYS)
    assert kb[:, 0].sum() == kb[:, 1].sum() == 8
    with pytest.raises(ValueError, match="unknown action class"):
        action_script("fly", 5, KEYS)


@pytest.fixture(scope="module")
def sandbox():
    """A perfect world model: the sandbox itself, replayed from the same seed under any actions."""
    from capture.actions import ActionSpace, FrameAction
    from unreal_bridge.sandbox import SandboxWorld

    world = SandboxWorld(scene="park", width=112, height=64, fov_deg=90.0, action_space=ActionSpace(KEYS))

    def replay(kb, ms):
        frames = [world.reset(5).frame]
        for i in range(1, len(kb)):
            keys = {k for k, v in zip(KEYS, kb[i]) if v > 0.5}
            frames.append(world.step(FrameAction(keys, float(ms[i, 0]), float(ms[i, 1]))).frame)
        return np.stack(frames)

    yield replay
    world.close()


class _Model:
    def __init__(self, fn, frames=17):
        self.fn, self.frames, self.height, self.width = fn, frames, 64, 112

    def __call__(self, image, kb, ms):
        return self.fn(kb, ms)


def test_controllability_of_a_video_against_its_actions_and_shuffled_ones(sandbox):
    kb, ms = composite_script(41, KEYS, turn_deg=3.0)
    video = sandbox(kb, ms)
    good = controllability(video, kb, ms, KEYS, 90.0)
    assert good.mouse_kappa > 0.8 and good.per_class["turn_right"] > 0.9 and good.per_class["forward"] > 0.8
    perm = np.r_[0, 1 + np.random.default_rng(0).permutation(40)]
    bad = controllability(video, kb[perm], ms[perm], KEYS, 90.0)
    assert abs(bad.mouse_kappa) < 0.3 and bad.mouse_acc < good.mouse_acc


def test_evaluate_episode_scores_a_perfect_model_high_and_a_frozen_one_at_chance(sandbox):
    kb, ms = composite_script(33, KEYS, turn_deg=3.0)
    recording = sandbox(kb, ms)
    perfect = _Model(sandbox)
    frozen = _Model(lambda k, m: np.repeat(recording[:1], len(k), axis=0))
    rep = evaluate_episode({"perfect": perfect, "frozen": frozen}, recording, kb, ms, KEYS, 90.0, reference=sandbox,
                           config=EvalConfig(scripts=True, loops=(16,)))
    p, f = rep["models"]["perfect"], rep["models"]["frozen"]
    assert p["recorded"]["fidelity"]["psnr_db"] is None  # identical frames: infinite PSNR (null in JSON)
    assert p["recorded"]["controllability"]["mouse_kappa"] > 0.8
    assert f["recorded"]["controllability"]["mouse_kappa"] == pytest.approx(0.0, abs=0.05)
    assert abs(p["shuffled_actions"]["controllability"]["mouse_kappa"]) < 0.35
    assert set(p["scripts"]) == set(ACTION_CLASSES)  # 17-frame rollouts: one script per action class
    assert p["scripts"]["turn_left"]["controllability"]["per_class"]["turn_left"] > 0.9
    assert p["scripts"]["look_up"]["fidelity"]["ssim"] == pytest.approx(1.0)
    turn = next(lp for lp in p["loops"] if lp["kind"] == "turn")
    assert turn["psnr_db"] == turn["world_psnr_db"]  # a perfect model matches the world's own loop
    rows = summarise([rep])
    assert rows["perfect: recorded actions"]["mouse_kappa"] > rows["frozen: recorded actions"]["mouse_kappa"]
    assert rows["recording"]["mouse_acc"] > 0.9
