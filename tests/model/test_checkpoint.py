"""Strict weight loading: safetensors round trip with Matrix-Game's "model." prefix, mismatch reports, VAE and
CLIP files (torch.load weights_only)."""

from __future__ import annotations

import pytest
import torch

import model
from tests.model.helpers import randomize_zero_init, tiny_inputs

import safetensors.torch as safetensors_torch  # noqa: E402


def test_tiny_dit_round_trips_through_prefixed_safetensors(tmp_path):
    cfg = model.get_config("tiny")
    src = model.build_dit(cfg)
    randomize_zero_init(src)
    path = tmp_path / "tiny_distilled.safetensors"
    safetensors_torch.save_file({f"model.{k}": v.contiguous() for k, v in src.state_dict().items()}, str(path))

    torch.manual_seed(123)
    dst = model.build_dit(cfg)
    model.load_checkpoint(dst, path)  # strips "model."
    for (k, a), (k2, b) in zip(src.state_dict().items(), dst.state_dict().items()):
        assert k == k2 and torch.equal(a, b), k
    loaded = model.WorldModelDiT.from_pretrained(path, cfg.dit)  # meta build + assign
    args = tiny_inputs(cfg, frames=3)
    with torch.no_grad():
        torch.testing.assert_close(loaded(*args), src(*args), rtol=0, atol=0)


def test_mismatch_error_lists_missing_unexpected_and_shape_mismatches(tmp_path):
    cfg = model.get_config("tiny")
    dit = model.build_dit(cfg)
    sd = {f"model.{k}": v.clone() for k, v in dit.state_dict().items()}
    del sd["model.blocks.1.action_model.t_qkv.weight"]
    sd["model.blocks.2.action_model.t_qkv.weight"] = torch.zeros(3)
    sd["model.patch_embedding.weight"] = torch.zeros(64, 35, 1, 2, 2)
    path = tmp_path / "broken.safetensors"
    safetensors_torch.save_file(sd, str(path))
    before = {k: v.clone() for k, v in dit.state_dict().items()}

    with pytest.raises(model.CheckpointMismatchError) as info:
        model.load_checkpoint(dit, path)
    err = info.value
    assert err.missing == ["blocks.1.action_model.t_qkv.weight"]
    assert err.unexpected == ["blocks.2.action_model.t_qkv.weight"]
    assert err.shape_mismatches == [("patch_embedding.weight", (64, 35, 1, 2, 2), (64, 36, 1, 2, 2))]
    text = str(err)
    for needle in ("missing keys", "blocks.1.action_model.t_qkv.weight", "unexpected keys",
                   "blocks.2.action_model.t_qkv.weight", "patch_embedding.weight: [64, 35, 1, 2, 2] vs [64, 36, 1, 2, 2]",
                   str(path)):
        assert needle in text
    # nothing was modified by the failed load
    assert all(torch.equal(before[k], v) for k, v in dit.state_dict().items())


def test_a_templerun_checkpoint_does_not_load_into_a_universal_model(tmp_path):
    temple = model.build_dit(model.get_config("tiny", mode="templerun"))
    path = tmp_path / "temple.safetensors"
    safetensors_torch.save_file({f"model.{k}": v for k, v in temple.state_dict().items()}, str(path))
    with pytest.raises(model.CheckpointMismatchError) as info:
        model.WorldModelDiT.from_pretrained(path, model.get_config("tiny", mode="universal").dit)
    assert "blocks.0.action_model.mouse_mlp.0.weight" in info.value.missing
    assert ("blocks.0.action_model.keyboard_embed.0.weight", (16, 7), (16, 4)) in info.value.shape_mismatches


def test_vae_loads_a_plain_torch_state_dict_with_weights_only(tmp_path):
    cfg = model.get_config("tiny")
    src = model.WanVAE(cfg.vae)
    path = tmp_path / "vae.pth"
    torch.save(src.state_dict(), path)
    vae = model.WanVAE.from_pretrained(path, cfg.vae)
    assert not any(t.is_meta for t in list(vae.parameters()) + list(vae.buffers()))
    x = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(vae.encode(x), src.encode(x), rtol=0, atol=0)


def test_image_encoder_loads_visual_keys_and_ignores_the_text_tower(tmp_path):
    cfg = model.get_config("tiny").image_encoder
    src = model.ImageEncoder(cfg)
    sd = dict(src.state_dict())
    sd["textual.token_embedding.weight"] = torch.zeros(5, 4)  # Wan's CLIP file holds the text tower too
    sd["log_scale"] = torch.tensor(4.6)
    path = tmp_path / "clip.pth"
    torch.save(sd, path)
    enc = model.ImageEncoder.from_pretrained(path, cfg)
    img = torch.rand(2, 3, 40, 56) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(enc(img), src(img), rtol=0, atol=0)


def test_open_clip_layout_is_converted_to_the_wan_layout(tmp_path):
    cfg = model.get_config("tiny").image_encoder
    d, n_tok = cfg.dim, cfg.num_tokens
    hidden = int(d * cfg.mlp_ratio)
    oc: dict[str, torch.Tensor] = {
        "visual.conv1.weight": torch.randn(d, 3, cfg.patch_size, cfg.patch_size),
        "visual.class_embedding": torch.randn(d),
        "visual.positional_embedding": torch.randn(n_tok, d),
        "visual.ln_pre.weight": torch.randn(d), "visual.ln_pre.bias": torch.randn(d),
        "visual.ln_post.weight": torch.randn(d), "visual.ln_post.bias": torch.randn(d),
        "visual.proj": torch.randn(d, cfg.out_dim),
        "transformer.resblocks.0.ln_1.weight": torch.randn(d),  # open_clip's text tower: ignored
        "logit_scale": torch.tensor(1.0),
    }
    for i in range(cfg.num_layers):
        p = f"visual.transformer.resblocks.{i}"
        oc.update({
            f"{p}.ln_1.weight": torch.randn(d), f"{p}.ln_1.bias": torch.randn(d),
            f"{p}.attn.in_proj_weight": torch.randn(3 * d, d), f"{p}.attn.in_proj_bias": torch.randn(3 * d),
            f"{p}.attn.out_proj.weight": torch.randn(d, d), f"{p}.attn.out_proj.bias": torch.randn(d),
            f"{p}.ln_2.weight": torch.randn(d), f"{p}.ln_2.bias": torch.randn(d),
            f"{p}.mlp.c_fc.weight": torch.randn(hidden, d), f"{p}.mlp.c_fc.bias": torch.randn(hidden),
            f"{p}.mlp.c_proj.weight": torch.randn(d, hidden), f"{p}.mlp.c_proj.bias": torch.randn(d),
        })
    path = tmp_path / "open_clip.safetensors"
    safetensors_torch.save_file(oc, str(path))
    enc = model.ImageEncoder(cfg)
    model.load_image_encoder_weights(enc, path)
    v = enc.visual
    assert torch.equal(v.cls_embedding, oc["visual.class_embedding"].view(1, 1, d))
    assert torch.equal(v.pos_embedding[0], oc["visual.positional_embedding"])
    assert torch.equal(v.head, oc["visual.proj"])
    assert torch.equal(v.transformer[1].attn.to_qkv.weight, oc["visual.transformer.resblocks.1.attn.in_proj_weight"])
    assert torch.equal(v.transformer[2].mlp[2].bias, oc["visual.transformer.resblocks.2.mlp.c_proj.bias"])
    assert torch.equal(v.post_norm.weight, oc["visual.ln_post.weight"])


def test_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        model.read_state_dict(tmp_path / "nope.safetensors")
