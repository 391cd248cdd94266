"""Full-size configs match the released checkpoints' state-dict layout exactly (built on the meta device).

The expected key lists are derived from the reference implementations by fixtures/derive_reference_keys.py,
independently of the model package.
"""

from __future__ import annotations

import pytest
import torch

import model
from tests.model.helpers import read_key_fixture


def shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def assert_same_layout(got: dict[str, tuple[int, ...]], expected: dict[str, tuple[int, ...]]) -> None:
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    mismatched = sorted(k for k in expected if k in got and got[k] != expected[k])
    assert not missing and not unexpected and not mismatched, (missing[:10], unexpected[:10], mismatched[:10])


@pytest.mark.parametrize("mode", ["universal", "gta_drive", "templerun"])
def test_full_dit_matches_matrix_game_2_checkpoint_keys(mode):
    with torch.device("meta"):
        dit = model.WorldModelDiT(model.get_config("mg2-1.3b", mode).dit)
    assert all(p.is_meta for p in dit.parameters())
    assert_same_layout(shapes(dit), read_key_fixture(f"mg2_dit_{mode}_keys.txt"))


def test_full_vae_matches_wan21_vae_pth_keys():
    with torch.device("meta"):
        vae = model.WanVAE(model.get_config("mg2-1.3b").vae)
    got = shapes(vae)
    assert got["encoder.conv1.weight"] == (96, 3, 3, 3, 3)
    assert got["decoder.upsamples.3.time_conv.weight"] == (768, 384, 3, 1, 1)
    assert_same_layout(got, read_key_fixture("wan21_vae_keys.txt"))
    assert sum(torch.Size(s).numel() for s in got.values()) == 126_892_531


def test_full_image_encoder_matches_wan_clip_visual_keys():
    with torch.device("meta"):
        enc = model.ImageEncoder(model.get_config("mg2-1.3b").image_encoder)
    assert_same_layout(shapes(enc), read_key_fixture("clip_vit_h14_visual_keys.txt"))
    assert enc.num_tokens == 257 and enc.dim == 1280


def test_foundation_config_puts_action_modules_in_every_block_and_blocks_are_configurable():
    with torch.device("meta"):
        base = model.WorldModelDiT(model.get_config("mg2-1.3b-base").dit)
        custom = model.WorldModelDiT(model.get_config("mg2-1.3b", action_blocks=[0, 7, 29]).dit)
    assert all(b.action_model is not None for b in base.blocks)
    assert [i for i, b in enumerate(custom.blocks) if b.action_model is not None] == [0, 7, 29]
    # the distilled checkpoints' keys are exactly the foundation's restricted to blocks 0-14
    distilled = read_key_fixture("mg2_dit_universal_keys.txt")
    base_keys = shapes(base)
    assert set(distilled) <= set(base_keys)
    extra = {k.split(".")[1] for k in set(base_keys) - set(distilled)}
    assert extra == {str(i) for i in range(15, 30)}


def test_unknown_config_names_are_rejected_with_the_allowed_values():
    with pytest.raises(ValueError, match="tiny"):
        model.get_config("mg3")
    with pytest.raises(ValueError, match="gta_drive"):
        model.get_config("tiny", mode="minecraft")
    with pytest.raises(ValueError, match="action_blocks"):
        model.get_config("tiny", action_blocks=[5])


def test_mode_facts_of_the_released_configs():
    facts = {
        mode: (c.dit.action.keyboard_dim, c.dit.action.mouse_dim, c.dit.local_attn_size)
        for mode in ("universal", "gta_drive", "templerun")
        for c in [model.get_config("mg2-1.3b", mode)]
    }
    assert facts == {"universal": (4, 2, 6), "gta_drive": (2, 2, 4), "templerun": (7, 0, 6)}
    assert model.get_config("mg2-1.3b-base").dit.local_attn_size == -1
    assert model.ACTION_MODES["templerun"].keys[:3] == ("nomove", "jump", "slide")
    d = model.get_config("mg2-1.3b").dit
    assert (d.dim, d.ffn_dim, d.num_heads, d.num_layers, d.freq_dim, d.eps, d.in_dim) == (1536, 8960, 12, 30, 256, 1e-6, 36)
