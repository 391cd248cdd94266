"""Image encoder interface: [B, 3, H, W] in [-1, 1] -> [B, tokens, dim]; penultimate-layer semantics."""

from __future__ import annotations

import torch

import model


def test_tiny_encoder_outputs_tokens_of_the_configured_width():
    cfg = model.get_config("tiny").image_encoder
    enc = model.ImageEncoder(cfg)
    out = enc(torch.rand(3, 3, 45, 80) * 2 - 1)  # any input size; resized to image_size
    assert out.shape == (3, cfg.num_tokens, cfg.dim) == (3, 17, 32)
    assert enc.num_tokens == 17 and enc.dim == 32


def test_tokens_come_from_output_blocks_of_the_transformer_without_post_norm():
    cfg = model.get_config("tiny").image_encoder
    enc = model.ImageEncoder(cfg)
    img = torch.rand(2, 3, 32, 32) * 2 - 1
    pixels = enc.preprocess(img)
    v = enc.visual
    x = torch.cat([v.cls_embedding.expand(2, -1, -1), v.patch_embedding(pixels).flatten(2).transpose(1, 2)], 1)
    x = v.pre_norm(x + v.pos_embedding)
    for block in v.transformer[: cfg.output_blocks]:
        x = block(x)
    assert cfg.output_blocks == cfg.num_layers - 1  # penultimate, as Wan's use_31_block of 32
    torch.testing.assert_close(enc(img), x)
    assert not torch.allclose(v(pixels, num_blocks=cfg.num_layers), x)


def test_preprocessing_maps_minus_one_one_to_clip_normalised_pixels():
    enc = model.ImageEncoder(model.get_config("tiny").image_encoder)
    p = enc.preprocess(torch.full((1, 3, 32, 32), -1.0))
    torch.testing.assert_close(p[0, :, 0, 0], -torch.tensor(model.configs.CLIP_MEAN) / torch.tensor(model.configs.CLIP_STD))


def test_full_clip_vit_h14_outputs_257_tokens_of_1280_on_the_meta_device():
    cfg = model.get_config("mg2-1.3b").image_encoder
    with torch.device("meta"):
        enc = model.ImageEncoder(cfg)
        out = enc.visual(torch.empty(1, 3, 224, 224), num_blocks=1)
    assert out.shape == (1, 257, 1280)
    assert (cfg.patch_size, cfg.num_layers, cfg.output_blocks, cfg.num_heads) == (14, 32, 31, 16)
