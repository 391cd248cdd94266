"""Causal student: block masks, the KV-cached streaming forward against the uncached block-causal forward
(including rolling eviction past the local window), the few-step rollout and its autograd contract, bad input."""

from __future__ import annotations

import pytest
import torch

import model
from model.causal import (
    MAX_LATENT_FRAMES,
    CausalConfig,
    CausalStreamer,
    PositionLimitError,
    block_mask,
    block_spans,
    causal_forward,
    rollout,
)
from tests.model.helpers import randomize_zero_init

H, W = 4, 6  # latent grid -> 2 x 3 tokens per latent frame


@pytest.fixture(scope="module")
def dit():
    torch.manual_seed(0)
    d = model.build_dit(model.get_config("tiny")).eval()
    randomize_zero_init(d, std=0.2)
    return d


def inputs(frames: int, batch: int = 2, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    mc = model.get_config("tiny")
    n_raw = 1 + 4 * (frames - 1)
    return dict(
        x0=torch.randn(batch, 16, frames, H, W, generator=g),
        noise=torch.randn(batch, 16, frames, H, W, generator=g),
        img=torch.randn(batch, mc.image_encoder.num_tokens, mc.image_encoder.dim, generator=g),
        cond=model.i2v_condition(torch.randn(batch, 16, frames, H, W, generator=g)),
        kb=torch.randint(0, 2, (batch, n_raw, 4), generator=g).float(),
        ms=0.3 * torch.randn(batch, n_raw, 2, generator=g),
    )


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def uncached_block(dit, d, cfg, start, n, x_block, sigma):
    """x0 of block [start, start+n) from the uncached forward over [clean blocks before ; noisy block]."""
    end = start + n
    b = x_block.shape[0]
    seq = torch.cat([d["x0"][:, :, :start], x_block], dim=2)
    t = torch.zeros(b, end)
    t[:, start:] = 1000 * sigma
    rows = 1 + 4 * (end - 1)
    v = causal_forward(dit, seq, t, d["img"], d["cond"][:, :, :end], d["kb"][:, :rows], d["ms"][:, :rows], cfg)
    return x_block - sigma * v[:, :, start:]


# ------------------------------------------------------------------------------------------------------------
# masks and config


@pytest.mark.parametrize("chunk,local,first", [(3, 6, False), (2, 4, True), (3, -1, True), (1, 1, False)])
def test_block_mask_is_the_block_causal_frame_mask(chunk, local, first):
    cfg = CausalConfig(chunk_frames=chunk, local_attn_frames=local, first_frame_block=first)
    expected = model.block_causal_frame_mask(11, chunk, local, independent_first_frame=first)
    assert torch.equal(block_mask(11, cfg), expected)


def test_block_mask_patterns_first_frame_block_window_and_hidden_first_frame():
    m = block_mask(7, CausalConfig(chunk_frames=2, local_attn_frames=4, first_frame_block=True)).int().tolist()
    assert m[0] == [1, 0, 0, 0, 0, 0, 0]  # frame 0 alone
    assert m[1] == m[2] == [1, 1, 1, 0, 0, 0, 0]  # block {1, 2} sees 0..2
    assert m[5] == m[6] == [0, 0, 0, 1, 1, 1, 1]  # block {5, 6}: window of 4 ending at 7
    h = block_mask(7, CausalConfig(chunk_frames=2, local_attn_frames=-1, hide_first_frame=True)).int().tolist()
    assert h[0] == [1, 0, 0, 0, 0, 0, 0] and h[3] == [0, 1, 1, 1, 1, 0, 0] and h[6] == [0, 1, 1, 1, 1, 1, 1]
    # frame 0 inside the first block stays visible to that block
    h2 = block_mask(4, CausalConfig(chunk_frames=2, local_attn_frames=-1, first_frame_block=False, hide_first_frame=True))
    assert h2[1].tolist() == [True, True, False, False] and h2[2].tolist() == [False, True, True, True]
    assert block_spans(8, CausalConfig(chunk_frames=3, first_frame_block=True)) == [(0, 1), (1, 3), (4, 3), (7, 1)]


def test_presets_and_from_dict():
    uni = CausalConfig.preset("mg2-universal")
    assert [round(1000 * s, 2) for s in uni.sigmas] == [1000.0, 908.84, 713.98]  # the reference's warped steps
    assert (uni.chunk_frames, uni.local_attn_frames, uni.first_frame_block, uni.context_noise) == (3, 6, False, 0.0)
    assert CausalConfig.preset("mg2-gta_drive").local_attn_frames == 4
    assert CausalConfig.preset("mg2-templerun").num_steps == 4
    assert CausalConfig.for_model("mg2-1.3b", "gta_drive") == CausalConfig.preset("mg2-gta_drive")
    c = CausalConfig.from_dict({"preset": "mg2-universal", "steps": [1000, 750, 500, 250], "shift": 5.0})
    assert c.local_attn_frames == 6 and c.sigmas == CausalConfig().sigmas
    assert CausalConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="chunk: unknown key"):
        CausalConfig.from_dict({"chunk": 3})
    with pytest.raises(ValueError, match="strictly decreasing"):
        CausalConfig(sigmas=(0.5, 0.9))
    with pytest.raises(ValueError, match="local_attn_frames"):
        CausalConfig(chunk_frames=3, local_attn_frames=2)


# ------------------------------------------------------------------------------------------------------------
# equivalence


@pytest.mark.parametrize(
    "cfg",
    [
        CausalConfig(chunk_frames=3, local_attn_frames=6, first_frame_block=False),
        CausalConfig(chunk_frames=2, local_attn_frames=-1, first_frame_block=True, hide_first_frame=True),
    ],
    ids=["mg2-like", "unbounded-hidden-first"],
)
def test_cached_blocks_equal_the_uncached_block_causal_forward(dit, cfg):
    frames = 8
    d = inputs(frames)
    st = CausalStreamer(dit, cfg, d["img"], d["cond"])
    with torch.no_grad():
        for i, (start, n) in enumerate(block_spans(frames, cfg)):
            sigma = (0.9, 0.5, 0.2)[i % 3]
            x = (1 - sigma) * d["x0"][:, :, start : start + n] + sigma * d["noise"][:, :, start : start + n]
            got = st.denoise_block(x, sigma, start, d["kb"], d["ms"])
            ref = uncached_block(dit, d, cfg, start, n, x, sigma)
            assert rel_err(got, ref) < 1e-4, (start, rel_err(got, ref))
            st.commit_block(d["x0"][:, :, start : start + n], start, d["kb"], d["ms"])
    # the actions and the cache matter: without the cache the block would differ
    fresh = CausalStreamer(dit, cfg, d["img"], d["cond"]).cache
    assert fresh.nbytes() == 0 and st.cache.nbytes() > 0


def test_rolling_eviction_equals_recomputation_and_keeps_memory_constant(dit):
    """Past the local window the cache drops frames; every block still equals the uncached forward over the whole
    sequence, frames that left the window no longer influence anything, and the cache stops growing."""
    cfg = CausalConfig(chunk_frames=2, local_attn_frames=4, first_frame_block=True)
    frames = 13
    d = inputs(frames, batch=1, seed=3)
    st = CausalStreamer(dit, cfg, d["img"], d["cond"])
    sizes, cached = [], []
    with torch.no_grad():
        for start, n in block_spans(frames, cfg):
            x = 0.6 * d["x0"][:, :, start : start + n] + 0.4 * d["noise"][:, :, start : start + n]
            got = st.denoise_block(x, 0.4, start, d["kb"], d["ms"])
            assert rel_err(got, uncached_block(dit, d, cfg, start, n, x, 0.4)) < 1e-4, start
            st.commit_block(d["x0"][:, :, start : start + n], start, d["kb"], d["ms"])
            sizes.append(st.cache.nbytes())
            cached.append(list(st.cache.frames))
        assert cached[-1] == [10, 11, 12] and all(len(c) <= cfg.local_attn_frames - 1 for c in cached)
        assert sizes[3:] == [sizes[3]] * (len(sizes) - 3)  # constant once the window is full
        # frame 2 is outside the window of the block at 9..10 (window 7..10): perturbing it changes nothing there,
        # while perturbing frame 7 does
        x = 0.6 * d["x0"][:, :, 9:11] + 0.4 * d["noise"][:, :, 9:11]
        base = uncached_block(dit, d, cfg, 9, 2, x, 0.4)
        for frame, changes in ((2, False), (7, True)):
            d2 = dict(d, x0=d["x0"].clone())
            d2["x0"][:, :, frame] += 1.0
            out = uncached_block(dit, d2, cfg, 9, 2, x, 0.4)
            assert (rel_err(out, base) > 1e-3) == changes, frame


def reference_rollout(dit, d, cfg, noise, generator):
    """Self-Forcing's rollout without a cache: every step recomputes the whole clean prefix."""
    frames = noise.shape[2]
    out = torch.zeros_like(noise)
    for start, n in block_spans(frames, cfg):
        x = noise[:, :, start : start + n]
        for i, s in enumerate(cfg.sigmas):
            x0 = uncached_block(dit, dict(d, x0=out), cfg, start, n, x, s)
            if i + 1 < cfg.num_steps:
                nxt = cfg.sigmas[i + 1]
                x = (1 - nxt) * x0 + nxt * torch.randn(x0.shape, generator=generator)
        out[:, :, start : start + n] = x0
    return out


def test_rollout_equals_the_uncached_few_step_rollout(dit):
    cfg = CausalConfig(chunk_frames=2, local_attn_frames=4, sigmas=(1.0, 0.8, 0.4))
    d = inputs(7, batch=1, seed=5)
    with torch.no_grad():
        got = rollout(dit, d["noise"], d["img"], d["cond"], d["kb"], d["ms"], cfg, generator=torch.Generator().manual_seed(9))
        ref = reference_rollout(dit, d, cfg, d["noise"], torch.Generator().manual_seed(9))
    assert got.shape == d["noise"].shape and rel_err(got, ref) < 1e-4
    # an earlier exit gives a different (noisier) result
    with torch.no_grad():
        early = rollout(dit, d["noise"], d["img"], d["cond"], d["kb"], d["ms"], cfg, exit_step=0)
    assert rel_err(early, ref) > 1e-2


def test_rollout_with_grad_keeps_only_the_exit_step_graph(dit):
    cfg = CausalConfig(chunk_frames=2, local_attn_frames=4, sigmas=(1.0, 0.8, 0.4))
    d = inputs(5, batch=1, seed=6)
    grad_modes = []
    hook = dit.register_forward_hook(lambda m, a, o: grad_modes.append(torch.is_grad_enabled()))
    try:
        out = rollout(dit, d["noise"], d["img"], d["cond"], d["kb"], d["ms"], cfg, exit_step=1,
                      generator=torch.Generator().manual_seed(2), grad=True)
    finally:
        hook.remove()
    blocks = len(block_spans(5, cfg))
    # per block: step 0 (no grad), step 1 = exit (grad), cache rewrite (no grad)
    assert grad_modes == [False, True, False] * blocks
    assert out.requires_grad
    dit.zero_grad()
    out.square().mean().backward()
    assert dit.patch_embedding.weight.grad is not None and dit.patch_embedding.weight.grad.abs().sum() > 0
    assert dit.blocks[0].cross_attn.k.weight.grad.abs().sum() > 0  # the context k/v are not taken from the cache
    dit.zero_grad()
    with torch.no_grad():
        same = rollout(dit, d["noise"], d["img"], d["cond"], d["kb"], d["ms"], cfg, exit_step=1,
                       generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(out.detach(), same, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="exit_step"):
        rollout(dit, d["noise"], d["img"], d["cond"], d["kb"], d["ms"], cfg, exit_step=3)


def test_rollout_gradients_are_the_same_with_gradient_checkpointing():
    """Checkpointed blocks are recomputed during backward, after later blocks changed the cache: each forward
    must keep seeing the cache as it was."""
    torch.manual_seed(0)
    dt = model.build_dit(model.get_config("tiny"))
    randomize_zero_init(dt, std=0.2)
    cfg = CausalConfig(chunk_frames=2, local_attn_frames=3, sigmas=(1.0, 0.5))
    d = inputs(7, batch=1, seed=8)
    grads = []
    for ckpt in (False, True):
        dt.gradient_checkpointing = ckpt
        dt.zero_grad()
        out = rollout(dt, d["noise"], d["img"], d["cond"], d["kb"], d["ms"], cfg, exit_step=1,
                      generator=torch.Generator().manual_seed(4), grad=True)
        out.square().mean().backward()
        grads.append({n: p.grad.clone() for n, p in dt.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 100
    for n in grads[0]:
        torch.testing.assert_close(grads[1][n], grads[0][n], rtol=1e-4, atol=1e-6)


def test_a_reset_streamer_equals_a_fresh_one(dit):
    """reset() forgets the frames and the cached image-context k/v."""
    cfg = CausalConfig(chunk_frames=2, local_attn_frames=4)
    d, d2 = inputs(3, batch=1, seed=10), inputs(3, batch=1, seed=11)
    st = CausalStreamer(dit, cfg, d["img"], d["cond"])
    with torch.no_grad():
        first = [st.generate_block(d["noise"][:, :, s : s + n], s, d["kb"], d["ms"]) for s, n in block_spans(3, cfg)]
        st.reset(d2["img"], d2["cond"])
        g = torch.Generator().manual_seed(0)
        again = [st.generate_block(d2["noise"][:, :, s : s + n], s, d2["kb"], d2["ms"], generator=g)
                 for s, n in block_spans(3, cfg)]
        fresh = rollout(dit, d2["noise"], d2["img"], d2["cond"], d2["kb"], d2["ms"], cfg,
                        generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(torch.cat(again, 2), fresh)
    assert not torch.allclose(torch.cat(first, 2), fresh)


def test_templerun_student_streams_without_mouse():
    torch.manual_seed(0)
    mc = model.get_config("tiny", "templerun")
    dt = model.build_dit(mc).eval()
    randomize_zero_init(dt, std=0.2)
    cfg = CausalConfig(chunk_frames=2, local_attn_frames=4)
    d = inputs(5, batch=1)
    d["kb"] = torch.nn.functional.one_hot(torch.randint(0, 7, (1, 17)), 7).float()
    d["ms"] = None
    with torch.no_grad():
        out = rollout(dt, d["noise"], d["img"], d["cond"], d["kb"], None, cfg, exit_step=0)
        st = CausalStreamer(dt, cfg, d["img"], d["cond"])
        x = d["noise"][:, :, :1]
        v = causal_forward(dt, x, torch.full((1, 1), 1000.0), d["img"], d["cond"][:, :, :1], d["kb"][:, :1], None, cfg)
        torch.testing.assert_close(st.denoise_block(x, 1.0, 0, d["kb"], None), x - v, rtol=1e-5, atol=1e-5)
    assert out.shape == d["noise"].shape


# ------------------------------------------------------------------------------------------------------------
# bad input


def test_bad_stream_inputs_are_clear_errors(dit):
    cfg = CausalConfig(chunk_frames=2, local_attn_frames=4)
    d = inputs(5, batch=1)
    st = CausalStreamer(dit, cfg, d["img"], d["cond"])
    x1 = d["noise"][:, :, :1]
    with torch.no_grad():
        with pytest.raises(ValueError, match="no block starts at latent frame 2"):
            st.denoise_block(d["noise"][:, :, 2:4], 1.0, 2, d["kb"], d["ms"])
        with pytest.raises(ValueError, match="commit every block"):
            st.denoise_block(d["noise"][:, :, 1:3], 1.0, 1, d["kb"], d["ms"])
        with pytest.raises(ValueError, match="this model expects 4"):
            st.denoise_block(x1, 1.0, 0, d["kb"][..., :3], d["ms"])
        with pytest.raises(ValueError, match=r"need rows 0\.\.0"):
            st.denoise_block(x1, 1.0, 0, d["kb"][:, :0], d["ms"])
        st.commit_block(x1, 0, d["kb"], d["ms"])
        with pytest.raises(ValueError, match=r"rows 0\.\.8"):  # block 1..2 needs raw rows up to 4 * 2
            st.denoise_block(d["noise"][:, :, 1:3], 1.0, 1, d["kb"][:, :5], d["ms"][:, :5])
        bad = d["ms"].clone()
        bad[0, 6, 1] = float("nan")
        with pytest.raises(ValueError, match="NaN"):
            st.denoise_block(d["noise"][:, :, 1:3], 1.0, 1, d["kb"], bad)
        with pytest.raises(ValueError, match="same action inputs"):
            st.denoise_block(d["noise"][:, :, 1:3], 1.0, 1, d["kb"], None)
        with pytest.raises(ValueError, match="at most 2 frames"):
            st.denoise_block(d["noise"][:, :, 1:4], 1.0, 1, d["kb"], d["ms"])


def test_positions_past_the_rope_table_are_refused(dit):
    cfg = CausalConfig(chunk_frames=2, local_attn_frames=4)
    d = inputs(2, batch=1)
    kb = torch.zeros(1, 1 + 4 * (MAX_LATENT_FRAMES + 1 - 1), 4)
    with pytest.raises(PositionLimitError, match="RoPE limit of 1024 latent frames"):
        causal_forward(dit, d["noise"], torch.zeros(1, 2), d["img"], d["cond"], kb, None, cfg,
                       frame_offset=MAX_LATENT_FRAMES - 1)
    big = torch.zeros(1, 16, MAX_LATENT_FRAMES + 1, 1, 2, device="meta")
    with pytest.raises(PositionLimitError, match="4093 video frames"):
        rollout(dit, big, d["img"], None, None, None, cfg)
