"""DiT: forward shapes in every mode, per-frame timesteps, gradient flow, the block-causal and frame-offset hooks,
conditioning helpers and input validation (all on the tiny config)."""

from __future__ import annotations

import pytest
import torch

import model
from tests.model.helpers import randomize_zero_init, tiny_inputs


@pytest.mark.parametrize("mode", ["universal", "gta_drive", "templerun"])
def test_forward_shapes_for_every_mode_and_a_fresh_model_predicts_zero(mode):
    cfg = model.get_config("tiny", mode)
    dit = model.build_dit(cfg)
    x, t, img, cond, kb, mouse = tiny_inputs(cfg, batch=2, frames=5, height=6, width=10)
    assert cond.shape == (2, 20, 5, 6, 10) and x.shape[1] + cond.shape[1] == cfg.dit.in_dim
    with torch.no_grad():
        out = dit(x, t, img, cond, kb, mouse)
        assert out.shape == x.shape
        assert torch.count_nonzero(out) == 0  # zero-initialised head (Wan's init)
        randomize_zero_init(dit)
        out = dit(x, t, img, cond, kb, mouse)
    assert out.shape == x.shape and torch.isfinite(out).all() and out.abs().sum() > 0


def test_a_scalar_timestep_per_sample_equals_the_same_timestep_on_every_frame():
    cfg = model.get_config("tiny")
    dit = model.build_dit(cfg)
    randomize_zero_init(dit)
    x, t, img, cond, kb, mouse = tiny_inputs(cfg, frames=3)
    with torch.no_grad():
        a = dit(x, t, img, cond, kb, mouse)
        b = dit(x, t[:, None].expand(-1, 3), img, cond, kb, mouse)
        c = dit(x, torch.stack([t, t, t + 100], 1), img, cond, kb, mouse)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a[:, :, 2], c[:, :, 2])


def test_gradients_reach_every_trainable_parameter():
    cfg = model.get_config("tiny")
    dit = model.build_dit(cfg)
    randomize_zero_init(dit)
    x, t, img, cond, kb, mouse = tiny_inputs(cfg, frames=3)
    img.requires_grad_(True)
    loss = dit(x, t, img, cond, kb, mouse).square().mean()
    loss.backward()
    no_grad = [n for n, p in dit.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert no_grad == []
    frozen = sorted(n for n, p in dit.named_parameters() if not p.requires_grad)
    # only the reference's never-applied action-module norm weights are frozen
    assert frozen and all(n.split(".")[-2].endswith("_norm") and ".action_model." in n for n in frozen)
    assert img.grad is not None and img.grad.abs().sum() > 0


def test_gradient_checkpointing_gives_the_same_gradients():
    cfg = model.get_config("tiny")
    dit = model.build_dit(cfg)
    randomize_zero_init(dit)
    args = tiny_inputs(cfg, frames=3)
    dit(*args).square().mean().backward()
    plain = {n: p.grad.clone() for n, p in dit.named_parameters() if p.grad is not None}
    dit.zero_grad()
    dit.gradient_checkpointing = True
    dit(*args).square().mean().backward()
    for n, p in dit.named_parameters():
        if n in plain:
            torch.testing.assert_close(p.grad, plain[n], rtol=1e-5, atol=1e-7)


def test_block_causal_mask_makes_earlier_frames_independent_of_later_latents_and_actions():
    cfg = model.get_config("tiny")
    dit = model.build_dit(cfg)
    randomize_zero_init(dit)
    frames, block = 5, 2
    x, t, img, cond, kb, mouse = tiny_inputs(cfg, batch=1, frames=frames)
    mask = model.block_causal_frame_mask(frames, block)
    x2, cond2, kb2, mouse2 = x.clone(), cond.clone(), kb.clone(), mouse.clone()
    x2[:, :, 2:] += torch.randn_like(x2[:, :, 2:])  # perturb latent frames of blocks >= 1
    cond2[:, :, 2:] += 1.0
    kb2[:, 5:] = 1 - kb2[:, 5:]  # raw frames 5.. belong to latent frames >= 2
    mouse2[:, 5:] += 1.0
    with torch.no_grad():
        a = dit(x, t, img, cond, kb, mouse, frame_mask=mask)
        b = dit(x2, t, img, cond2, kb2, mouse2, frame_mask=mask)
        full_a = dit(x, t, img, cond, kb, mouse)
        full_b = dit(x2, t, img, cond2, kb2, mouse2)
    torch.testing.assert_close(a[:, :, :2], b[:, :, :2], rtol=0, atol=1e-6)
    assert not torch.allclose(a[:, :, 2:], b[:, :, 2:])
    assert not torch.allclose(full_a[:, :, :2], full_b[:, :, :2])  # without the mask the future leaks back


def test_block_causal_frame_mask_patterns():
    m = model.block_causal_frame_mask(7, 3, local_attn_size=-1).int().tolist()
    assert m[0] == [1, 1, 1, 0, 0, 0, 0] and m[4] == [1, 1, 1, 1, 1, 1, 0] and m[6] == [1] * 7
    local = model.block_causal_frame_mask(9, 3, local_attn_size=4).int().tolist()
    assert local[8] == [0, 0, 0, 0, 0, 1, 1, 1, 1]
    first = model.block_causal_frame_mask(7, 3, independent_first_frame=True).int().tolist()
    assert first[0] == [1, 0, 0, 0, 0, 0, 0] and first[1] == [1, 1, 1, 1, 0, 0, 0] and first[6] == [1] * 7
    tok = model.expand_frame_mask(torch.tensor([[True, False], [True, True]]), 2, 3)
    assert tok.shape == (4, 6) and tok[1].tolist() == [True] * 3 + [False] * 3


def test_frame_offset_only_shifts_positions():
    """Without actions the DiT depends on time positions only through RoPE differences, so a common frame offset
    leaves the output unchanged; with actions, the offset selects the windows of later latent frames."""
    cfg = model.get_config("tiny")
    dit = model.build_dit(cfg)
    randomize_zero_init(dit)
    x, t, img, cond, kb, mouse = tiny_inputs(cfg, frames=3)
    with torch.no_grad():
        torch.testing.assert_close(dit(x, t, img, cond), dit(x, t, img, cond, frame_offset=7), rtol=1e-4, atol=1e-5)
        # actions for latent frames 0..4 given, the call covers latent frames 2..4
        kb_hist = torch.randint(0, 2, (2, 17, 4)).float()
        out = dit(x, t, img, cond, kb_hist, None, frame_offset=2)
        assert out.shape == x.shape
        with pytest.raises(ValueError, match="raw frames"):
            dit(x, t, img, cond, kb_hist, None, frame_offset=0)


def test_sinusoidal_timestep_embedding_is_cosine_first():
    e = model.sinusoidal_embedding(torch.tensor([0.0, 500.0]), 8)
    assert e.dtype == torch.float64 and e.shape == (2, 8)
    assert e[0].tolist() == [1.0] * 4 + [0.0] * 4
    torch.testing.assert_close(e[1, 1], torch.cos(torch.tensor(500.0 * 10000 ** (-1 / 4), dtype=torch.float64)))


def test_i2v_condition_is_mask_then_image_latents():
    lat = torch.randn(1, 16, 3, 2, 2)
    c = model.i2v_condition(lat)
    assert c.shape == (1, 20, 3, 2, 2)
    assert torch.all(c[:, :4, 0] == 1) and torch.all(c[:, :4, 1:] == 0)
    assert torch.equal(c[:, 4:], lat)


def test_bad_inputs_are_rejected_with_a_message():
    cfg = model.get_config("tiny", "templerun")
    dit = model.build_dit(cfg)
    x, t, img, cond, kb, _ = tiny_inputs(cfg, frames=2)
    with pytest.raises(ValueError, match="no mouse"):
        dit(x, t, img, cond, kb, torch.zeros(2, 5, 2))
    with pytest.raises(ValueError, match="expects 7"):
        dit(x, t, img, cond, kb[..., :4], None)
    with pytest.raises(ValueError, match="in_dim=36"):
        dit(x, t, img, cond[:, :4], kb, None)
    with pytest.raises(ValueError, match="timestep"):
        dit(x, torch.zeros(2, 5), img, cond, kb, None)
