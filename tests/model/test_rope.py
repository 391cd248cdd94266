"""RoPE: relative-position invariance, agreement with the complex-number definition, Wan's 3D split, and the
action module's partial temporal rotation."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from model.rope import (
    apply_rotary,
    inverse_frequencies,
    temporal_rope_angles,
    video_rope_angles,
    wan_axis_dims,
)


def rotate_at(x: torch.Tensor, pos: int, head_dim: int, rot_dim: int, theta: float) -> torch.Tensor:
    """x [1, H, D] at one position, via the library."""
    return apply_rotary(x, temporal_rope_angles(torch.tensor([pos]), head_dim, rot_dim, theta))


@settings(max_examples=40, deadline=None)
@given(m=st.integers(0, 2000), n=st.integers(0, 2000), shift=st.integers(0, 3000), seed=st.integers(0, 2**16))
def test_query_key_dot_product_depends_only_on_relative_position(m, n, shift, seed):
    g = torch.Generator().manual_seed(seed)
    q, k = torch.randn(2, 1, 3, 64, generator=g, dtype=torch.float64).unbind(0)
    for rot_dim, theta in ((64, 10000.0), (8, 256.0)):
        a = (rotate_at(q, m, 64, rot_dim, theta) * rotate_at(k, n, 64, rot_dim, theta)).sum(-1)
        b = (rotate_at(q, m + shift, 64, rot_dim, theta) * rotate_at(k, n + shift, 64, rot_dim, theta)).sum(-1)
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_rotation_preserves_norms_and_position_zero_is_identity():
    x = torch.randn(5, 7, 4, 32)
    ang = video_rope_angles((7, 1, 1), 32)
    y = apply_rotary(x, ang)
    torch.testing.assert_close(y.norm(dim=-1), x.norm(dim=-1))
    torch.testing.assert_close(y[:, 0], x[:, 0])


def test_apply_rotary_equals_complex_multiplication_on_interleaved_pairs():
    x = torch.randn(2, 6, 3, 16)
    angles = torch.rand(6, 8, dtype=torch.float64) * 10
    z = torch.view_as_complex(x.double().reshape(2, 6, 3, 8, 2).contiguous())
    expected = torch.view_as_real(z * torch.polar(torch.ones_like(angles), angles)[None, :, None, :]).flatten(-2)
    torch.testing.assert_close(apply_rotary(x, angles), expected.float(), rtol=1e-5, atol=1e-5)


def test_wan_3d_split_for_head_dim_128_is_22_21_21_pairs_with_per_axis_frequencies():
    assert wan_axis_dims(128) == (44, 42, 42)
    grid = (3, 4, 5)
    ang = video_rope_angles(grid, 128, frame_offset=10).view(*grid, 64)
    wt, wh, ww = inverse_frequencies(44, 1e4), inverse_frequencies(42, 1e4), inverse_frequencies(42, 1e4)
    f, h, w = 2, 3, 4
    torch.testing.assert_close(ang[f, h, w, :22], (10 + f) * wt)
    torch.testing.assert_close(ang[f, h, w, 22:43], h * wh)
    torch.testing.assert_close(ang[f, h, w, 43:], w * ww)
    assert float(wt[1]) == 1e4 ** (-2 / 44)


def test_action_rope_rotates_only_the_first_rot_dim_channels_with_theta_256():
    ang = temporal_rope_angles(torch.arange(5), head_dim=64, rot_dim=8, theta=256.0)
    assert ang.shape == (5, 32)
    assert torch.all(ang[:, 4:] == 0)
    torch.testing.assert_close(ang[3, :4], 3 * 256.0 ** (-torch.arange(0, 8, 2, dtype=torch.float64) / 8))
    x = torch.randn(5, 2, 64)
    y = apply_rotary(x, ang)
    assert torch.equal(y[..., 8:], x[..., 8:])
    assert not torch.allclose(y[1:, :, :8], x[1:, :, :8])


def test_3d_rope_scores_are_invariant_to_a_common_frame_offset():
    q, k = torch.randn(2, 1, 2 * 3 * 4, 2, 32).unbind(0)
    def scores(offset):
        ang = video_rope_angles((2, 3, 4), 32, frame_offset=offset)
        return torch.einsum("blhd,bmhd->bhlm", apply_rotary(q, ang), apply_rotary(k, ang))
    torch.testing.assert_close(scores(0), scores(37), rtol=1e-4, atol=1e-4)
