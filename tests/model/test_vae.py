"""Wan VAE (tiny width): streaming (chunked, cached) encode/decode equals one full causal pass, shapes,
causality, latent normalisation and input validation."""

from __future__ import annotations

import pytest
import torch

import model
from model.configs import WAN21_LATENT_MEAN, WAN21_LATENT_STD


@pytest.fixture(scope="module")
def vae() -> model.WanVAE:
    torch.manual_seed(0)
    v = model.WanVAE(model.get_config("tiny").vae).eval()
    with torch.no_grad():  # the attention output projections are zero-initialised; make them matter
        for m in v.modules():
            if isinstance(m, model.vae.AttentionBlock):
                m.proj.weight.normal_(0, 0.2)
    return v


def video(frames: int = 9, h: int = 32, w: int = 48, batch: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(frames * 1000 + h)
    return torch.rand(batch, 3, frames, h, w, generator=g) * 2 - 1


def test_streaming_encode_equals_full_causal_pass(vae):
    x = video(13)
    with torch.no_grad():
        mu_s, lv_s = vae.encode_moments(x, streaming=True)  # chunks of 1, 4, 4, 4 frames with a cache
        mu_f, lv_f = vae.encode_moments(x, streaming=False)  # one pass
    assert mu_s.shape == (1, 16, 4, 4, 6)
    torch.testing.assert_close(mu_s, mu_f, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(lv_s, lv_f, rtol=1e-5, atol=1e-5)


def test_streaming_decode_equals_full_causal_pass_and_block_streaming(vae):
    z = torch.randn(1, 16, 4, 4, 6)
    with torch.no_grad():
        full = vae.decode(z, streaming=False)
        per_latent = vae.decode(z, streaming=True)
        dec = model.StreamingDecoder(vae)
        blocks = [dec.push(z[:, :, :3]), dec.push(z[:, :, 3:])]  # e.g. 3 latents per generated block
    assert full.shape == (1, 3, 13, 32, 48)
    assert [b.shape[2] for b in blocks] == [9, 4]
    scale = full.abs().max()
    torch.testing.assert_close(per_latent, full, rtol=1e-5, atol=1e-5 * scale)
    torch.testing.assert_close(torch.cat(blocks, 2), full, rtol=1e-5, atol=1e-5 * scale)


def test_streaming_encoder_accepts_reference_chunks_and_rejects_others(vae):
    x = video(9)
    enc = model.StreamingEncoder(vae)
    with torch.no_grad():
        parts = [enc.push(x[:, :, :5]), enc.push(x[:, :, 5:9])]
        whole = vae.encode(x, streaming=False)
    assert [p.shape[2] for p in parts] == [2, 1]
    torch.testing.assert_close(torch.cat(parts, 2), whole, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="first chunk"):
        model.StreamingEncoder(vae).push(x[:, :, :2])


def test_decode_of_encode_shapes(vae):
    for frames, h, w in ((1, 16, 16), (5, 24, 40), (9, 32, 48)):
        x = video(frames, h, w, batch=2)
        with torch.no_grad():
            z = vae.encode(x)
            y = vae.decode(z)
        assert z.shape == (2, 16, 1 + (frames - 1) // 4, h // 8, w // 8)
        assert y.shape == x.shape


def test_encoder_and_decoder_are_causal_in_time(vae):
    x = video(9)
    x2 = x.clone()
    x2[:, :, 5:] = torch.rand_like(x2[:, :, 5:])  # frames of latent 2 only
    z = torch.randn(1, 16, 3, 4, 6)
    z2 = z.clone()
    z2[:, :, 2] += 1.0
    with torch.no_grad():
        a, b = vae.encode(x, streaming=False), vae.encode(x2, streaming=False)
        c, d = vae.decode(z, streaming=False), vae.decode(z2, streaming=False)
    torch.testing.assert_close(a[:, :, :2], b[:, :, :2], rtol=0, atol=1e-6)
    assert not torch.allclose(a[:, :, 2], b[:, :, 2])
    torch.testing.assert_close(c[:, :, :5], d[:, :, :5], rtol=0, atol=1e-6)
    assert not torch.allclose(c[:, :, 5:], d[:, :, 5:])


def test_latent_normalisation_uses_the_published_wan21_statistics(vae):
    assert len(WAN21_LATENT_MEAN) == len(WAN21_LATENT_STD) == 16
    assert WAN21_LATENT_MEAN[0] == -0.7571 and WAN21_LATENT_STD[-1] == 1.9160
    z = torch.randn(2, 16, 3, 2, 2)
    torch.testing.assert_close(vae.denormalize(vae.normalize(z)), z)
    torch.testing.assert_close(vae.normalize(z)[:, 3], (z[:, 3] - 0.1075) / 2.6558)
    with torch.no_grad():
        mu, _ = vae.encode_moments(video(5))
        torch.testing.assert_close(vae.encode(video(5)), vae.normalize(mu))


def test_training_forward_backpropagates_through_the_streaming_path(vae):
    v = model.WanVAE(model.get_config("tiny").vae)
    recon, mu, logvar = v(video(5, 16, 16), sample_posterior=True, streaming=True)
    assert recon.shape == (1, 3, 5, 16, 16) and mu.shape == logvar.shape == (1, 16, 2, 2, 2)
    recon.square().mean().backward()
    assert v.encoder.conv1.weight.grad.abs().sum() > 0 and v.decoder.head[2].weight.grad.abs().sum() > 0


def test_bad_video_shapes_are_rejected(vae):
    with pytest.raises(ValueError, match="T = 1 \\+ 4k"):
        vae.encode(video(8))
    with pytest.raises(ValueError, match="multiples of 8"):
        vae.encode(video(5, 20, 16))
