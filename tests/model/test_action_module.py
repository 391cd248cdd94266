"""Action module: windows, the fixed mouse-path bug (any number of latent frames), agreement with a naive
per-frame reference computation, and zero-initialised outputs."""

from __future__ import annotations

import math

import pytest
import torch

import model
from model.action_module import ActionModule, action_windows


def fresh_module(mode: str = "universal") -> ActionModule:
    cfg = model.get_config("tiny", mode).dit
    return ActionModule(cfg.action, cfg.dim)


def randomized(module: ActionModule) -> ActionModule:
    with torch.no_grad():
        for name in ("proj_mouse", "proj_keyboard"):
            if hasattr(module, name):
                getattr(module, name).weight.normal_(0, 0.2)
    return module


def naive_rms(x: torch.Tensor) -> torch.Tensor:
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + 1e-6)


def naive_rope(x: torch.Tensor, pos: int, rot_dim: int, theta: float) -> torch.Tensor:
    """Rotate pairs (x[2i], x[2i+1]), i < rot_dim/2, by pos * theta^(-2i/rot_dim); x [..., D]."""
    out = x.clone()
    for i in range(rot_dim // 2):
        a = pos * theta ** (-2 * i / rot_dim)
        c, s = math.cos(a), math.sin(a)
        out[..., 2 * i] = x[..., 2 * i] * c - x[..., 2 * i + 1] * s
        out[..., 2 * i + 1] = x[..., 2 * i] * s + x[..., 2 * i + 1] * c
    return out


def naive_softmax_attention(q, k, v):  # [Lq, H, D], [Lk, H, D]
    w = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(q.shape[-1])
    return torch.einsum("hqk,khd->qhd", w.softmax(-1), v)


def window_rows(i: int, ratio: int = 4, window: int = 3) -> list[int]:
    """Raw rows seen by latent frame i: i*r - r*w ... i*r - 1, clamped to row 0."""
    return [max(i * ratio - ratio * window + j, 0) for j in range(ratio * window)]


def naive_mouse_residual(m: ActionModule, x, grid, mouse):
    t, gh, gw = grid
    s = gh * gw
    cfg = m.cfg
    out = torch.zeros_like(x)
    for b in range(x.shape[0]):
        win = torch.stack([mouse[b, window_rows(i)].flatten() for i in range(t)])  # [T, 24]
        for loc in range(s):
            tokens = torch.stack([x[b, i * s + loc] for i in range(t)])  # [T, C]
            h = m.mouse_mlp(torch.cat([tokens, win], -1))
            q, k, v = m.t_qkv(h).view(t, 3, cfg.num_heads, -1).unbind(1)
            q, k = naive_rms(q), naive_rms(k)
            q = torch.stack([naive_rope(q[i], i, cfg.rope_time_dim, cfg.rope_theta) for i in range(t)])
            k = torch.stack([naive_rope(k[i], i, cfg.rope_time_dim, cfg.rope_theta) for i in range(t)])
            y = m.proj_mouse(naive_softmax_attention(q, k, v).flatten(1))  # [T, C]
            for i in range(t):
                out[b, i * s + loc] = y[i]
    return out


def naive_keyboard_residual(m: ActionModule, x, grid, keyboard):
    t, gh, gw = grid
    s = gh * gw
    cfg = m.cfg
    out = torch.zeros_like(x)
    for b in range(x.shape[0]):
        emb = m.keyboard_embed(keyboard[b])  # [N, hidden]
        win = torch.stack([emb[window_rows(i)].flatten() for i in range(t)])  # [T, 12*hidden]
        k, v = m.keyboard_attn_kv(win).view(t, 2, cfg.num_heads, -1).unbind(1)
        k = torch.stack([naive_rope(naive_rms(k[j]), j, cfg.rope_time_dim, cfg.rope_theta) for j in range(t)])
        for tok in range(t * s):
            q = naive_rms(m.mouse_attn_q(x[b, tok]).view(cfg.num_heads, -1))
            q = naive_rope(q, tok // s, cfg.rope_time_dim, cfg.rope_theta)
            out[b, tok] = m.proj_keyboard(naive_softmax_attention(q[None], k, v)[0].flatten())
    return out


def test_windows_follow_the_reference_indexing():
    mouse = torch.arange(1 + 4 * 4, dtype=torch.float32)[None, :, None].repeat(1, 1, 2)  # row r holds r
    w = action_windows(mouse, num_frames=5, frame_offset=0, ratio=4, window=3).view(1, 5, 12, 2)
    assert w[0, 0, :, 0].tolist() == [0.0] * 12
    assert w[0, 1, :, 0].tolist() == [0.0] * 8 + [0, 1, 2, 3]
    assert w[0, 4, :, 0].tolist() == list(range(4, 16))
    for i in range(5):
        assert w[0, i, :, 1].tolist() == [float(r) for r in window_rows(i)]
    # frame_offset selects the windows of later latent frames from the whole action history
    w2 = action_windows(mouse, num_frames=2, frame_offset=3, ratio=4, window=3)
    torch.testing.assert_close(w2, w.view(1, 5, 24)[:, 3:5])


def test_action_count_must_match_the_latent_frames():
    with pytest.raises(ValueError, match=r"expected 1 \+ 4 \* \(3 - 1\) = 9"):
        action_windows(torch.zeros(1, 8, 2), num_frames=3, frame_offset=0, ratio=4, window=3)


@pytest.mark.parametrize("frames", [1, 2, 4, 5])
def test_mouse_path_works_for_any_number_of_latent_frames_and_matches_a_per_frame_reference(frames):
    """Regression for the reference bug: its non-cached mouse path expands the windows to num_frame_per_block
    (3) latent frames, so bidirectional training with T != 3 fails. Here T is free."""
    m = randomized(fresh_module())
    assert model.get_config("tiny").dit.num_frame_per_block == 3
    grid = (frames, 2, 3)
    x = torch.randn(2, frames * 6, m.dim)
    mouse = torch.randn(2, 1 + 4 * (frames - 1), 2)
    with torch.no_grad():
        got = m.mouse_residual(x, grid, mouse)
        want = naive_mouse_residual(m, x, grid, mouse)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_keyboard_path_matches_a_per_token_reference_for_batch_above_one():
    m = randomized(fresh_module())
    grid = (4, 2, 2)
    x = torch.randn(3, 16, m.dim)
    keyboard = torch.randint(0, 2, (3, 13, 4)).float()
    with torch.no_grad():
        got = m.keyboard_residual(x, grid, keyboard)
        want = naive_keyboard_residual(m, x, grid, keyboard)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode", ["universal", "gta_drive", "templerun"])
def test_fresh_action_module_is_the_identity(mode):
    m = fresh_module(mode)
    assert m.enable_mouse == (mode != "templerun") and m.enable_keyboard
    x = torch.randn(2, 3 * 6, m.dim)
    kb = torch.randint(0, 2, (2, 9, m.cfg.keyboard_dim)).float()
    mouse = torch.randn(2, 9, 2) if m.enable_mouse else None
    torch.testing.assert_close(m(x, (3, 2, 3), kb, mouse), x, rtol=0, atol=0)


def test_unused_reference_norm_weights_are_kept_but_frozen():
    m = fresh_module()
    for name in ("img_attn_q_norm", "img_attn_k_norm", "key_attn_q_norm", "key_attn_k_norm"):
        norm = getattr(m, name)
        assert norm.weight.shape == (8,) and not norm.weight.requires_grad and not norm.apply_weight
