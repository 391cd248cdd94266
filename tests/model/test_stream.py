"""Streaming generation with the causal student: equality with the offline rollout + full decode, incremental mp4
writing, action sources (CSV, terminal lines), loading Matrix-Game 2.0 distilled checkpoints strictly, bad input."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

import model
from model.bundle import save_module, save_safetensors
from model.causal import CausalConfig, PositionLimitError, rollout
from model.checkpoint import CheckpointMismatchError
from model.conditions import ConditionError, build_condition_spec
from model.latents import encode_condition
from model.stream import (
    ConditionStream,
    TerminalActions,
    generate_student,
    load_mg2_dit,
    load_student,
    mg2_mode_from_shapes,
    stream_student,
)
from tests.model.helpers import randomize_zero_init, read_key_fixture

HEIGHT, WIDTH = 32, 48  # latent 4 x 6
KEYS = ("w", "s", "a", "d", "space")
ONE_STEP = CausalConfig(chunk_frames=2, local_attn_frames=4, first_frame_block=True, sigmas=(1.0,))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A tiny student saved as a playmill checkpoint (random weights, non-zero outputs)."""
    d = tmp_path_factory.mktemp("student")
    torch.manual_seed(0)
    mc = model.get_config("tiny")
    dit = model.build_dit(mc)
    randomize_zero_init(dit, std=0.2)
    save_module(d / "vae.safetensors", model.build_vae(mc), mc.vae)
    save_module(d / "image_encoder.safetensors", model.build_image_encoder(mc), mc.image_encoder)
    spec = build_condition_spec("universal", KEYS, num_frames=9, height=HEIGHT, width=WIDTH, mouse_scale=0.05)
    run = {"model": mc, "conditions": spec.to_dict(), "fps": 20.0, "timestep_shift": 5.0, "vae": "vae.safetensors",
           "image_encoder": "image_encoder.safetensors", "causal": CausalConfig.preset("tiny").to_dict()}
    save_safetensors(d / "dit_ema.safetensors", dit.state_dict(), run)
    return d


@pytest.fixture(scope="module")
def student(run_dir):
    return load_student(run_dir / "dit_ema.safetensors", device="cpu")


def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.random((40, 60, 3)) * 255).astype(np.uint8)


def dataset_actions(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    kb = (rng.random((n, len(KEYS))) < 0.4).astype(np.float32)
    mouse = rng.normal(0, 2.0, (n, 2)).astype(np.float32)
    return kb, mouse


def test_streaming_equals_the_offline_rollout_and_full_decode(student):
    """Streamed conditions (VAE encoder pushed latent by latent), trimmed action history and the streaming decoder
    give what the offline path gives: encode the padded clip, roll out with whole-history actions, decode all."""
    n_frames = 21  # 6 latent frames: blocks [0], [1, 2], [3, 4], [5]
    kb_ds, mouse_ds = dataset_actions(n_frames)
    blocks = list(stream_student(student, image(), (kb_ds, mouse_ds), num_frames=n_frames, cfg=ONE_STEP, seed=3))
    assert [b.start_frame for b in blocks] == [0, 1, 3, 5]
    assert [len(b.frames) for b in blocks] == [1, 8, 8, 4]
    got = torch.cat([b.latents for b in blocks], dim=2)

    b = student.bundle
    spec = b.spec
    from model.sample import load_image

    frame0 = torch.from_numpy(load_image(image(), HEIGHT, WIDTH)).permute(2, 0, 1)[None]
    with torch.no_grad():
        cond_lat, tokens = encode_condition(b.vae, b.image_encoder, frame0, n_frames)
    g = torch.Generator().manual_seed(3)
    noise = torch.cat([torch.randn(1, 16, n, 4, 6, generator=g) for n in (1, 2, 2, 1)], dim=2)
    kb = spec.keyboard(torch.from_numpy(kb_ds))[None]
    ms = spec.mouse(torch.from_numpy(mouse_ds))[None]
    with torch.no_grad():
        ref = rollout(b.dit, noise, tokens, model.i2v_condition(cond_lat), kb, ms, ONE_STEP)
        video = b.vae.decode(ref, streaming=True)
    assert float((got - ref).norm() / ref.norm()) < 1e-4
    ref_frames = ((video[0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0).numpy()
    frames = np.concatenate([b.frames for b in blocks])
    assert frames.shape == ref_frames.shape == (n_frames, HEIGHT, WIDTH, 3)
    assert np.abs(frames.astype(int) - ref_frames.astype(int)).max() <= 1


def test_condition_stream_matches_full_encoding_and_freezes_at_the_encoders_fixed_point(student):
    vae = student.bundle.vae
    first = torch.rand(1, 3, 1, HEIGHT, WIDTH) * 2 - 1
    n = 40
    cs = ConditionStream(vae, first)
    got = torch.cat([cs(0, 1)] + [cs(i, 1) for i in range(1, n)], dim=2)
    assert cs.frozen_at is not None and cs.frozen_at < n  # later latents are reused, not encoded
    with torch.no_grad():
        full = vae.encode(torch.cat([first, torch.zeros(1, 3, 4 * (n - 1), HEIGHT, WIDTH)], dim=2))
    torch.testing.assert_close(got[:, 4:], full, rtol=0, atol=1e-5)
    assert torch.all(got[:, :4, 0] == 1) and torch.all(got[:, :4, 1:] == 0)
    with pytest.raises(ValueError, match="stream is at 40"):
        cs(3, 1)


def test_generate_student_writes_the_mp4_as_it_goes(student, run_dir, tmp_path):
    kb, mouse = dataset_actions(20)
    csv = tmp_path / "actions.csv"
    pd.DataFrame({"frame": np.arange(20), **{f"key_{k}": kb[:, i] for i, k in enumerate(KEYS)},
                  "d_pitch": mouse[:, 0], "d_yaw": mouse[:, 1]}).to_csv(csv, index=False)
    out = tmp_path / "out.mp4"
    res = generate_student(run_dir, image(), csv, out, device="cpu", keep_frames=True)  # a checkpoint folder
    # the tiny preset: frame 0 alone, then blocks of 2 latent frames (8 video frames); 20 rows -> 1 + 8 + 8 frames
    assert res.path == out and res.num_frames == 17 and res.latent_frames == 5 and res.fps == 20.0
    assert len(res.block_seconds) == 3 and res.frames.shape == (17, HEIGHT, WIDTH, 3)
    cap = cv2.VideoCapture(str(out))
    n, w, h = (int(cap.get(p)) for p in (cv2.CAP_PROP_FRAME_COUNT, cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT))
    cap.release()
    assert (n, w, h) == (17, WIDTH, HEIGHT)
    # same seed, same video; frames leave the generator block by block
    again = generate_student(student, image(), csv, None, keep_frames=True)
    np.testing.assert_array_equal(again.frames, res.frames)
    it = stream_student(student, image(), csv)
    assert len(next(it).frames) == 1
    it.close()


def test_terminal_lines_drive_the_stream_until_quit(student):
    src = TerminalActions(["w", "wl x", "", "q", "d"], "universal")
    kb, mouse = src.parse("wl")
    assert kb.tolist() == [1, 0, 0, 0] and mouse.tolist() == pytest.approx([0.0, 0.1])
    kb, mouse = src.parse(" ik ")
    assert kb.tolist() == [0, 0, 0, 0] and mouse.tolist() == [0.0, 0.0]
    blocks = list(stream_student(student, image(), src))
    assert [b.start_frame for b in blocks] == [0, 1, 3]  # three lines, then "q"
    tr = TerminalActions([], "templerun")
    kb, mouse = tr.parse("")
    assert mouse is None and kb.tolist() == [1, 0, 0, 0, 0, 0, 0]  # nomove
    kb, _ = tr.parse("wa")
    assert kb.tolist() == [0, 1, 0, 0, 0, 0, 0]  # one-hot: the first key wins
    assert tr.parse("l")[0].tolist() == [0, 0, 0, 0, 1, 0, 0] and tr.parse("a")[0].tolist() == [0, 0, 0, 0, 0, 1, 0]
    gta = TerminalActions([], "gta_drive")
    kb, mouse = gta.parse("wd")
    assert kb.tolist() == [1, 0] and mouse.tolist() == pytest.approx([0.0, 0.1])


def test_bad_inputs_are_clear_errors(student, tmp_path):
    kb, mouse = dataset_actions(21)
    with pytest.raises(ConditionError, match=r"keyboard must be \[T, 5\]"):
        list(stream_student(student, image(), (kb[:, :3], mouse)))
    with pytest.raises(ConditionError, match="only 21 rows"):
        list(stream_student(student, image(), (kb, mouse), num_frames=25))
    bad = mouse.copy()
    bad[7, 1] = np.nan
    with pytest.raises(ConditionError, match="NaN"):
        list(stream_student(student, image(), (kb, bad)))
    with pytest.raises(ValueError, match="is a 'universal' model, not 'gta_drive'"):
        list(stream_student(student, image(), (kb, mouse), mode="gta_drive"))
    with pytest.raises(PositionLimitError, match="RoPE limit"):
        list(stream_student(student, image(), (kb, mouse), num_frames=1 + 4 * 1024))
    with pytest.raises(ConditionError, match=r"1 \+ 4k"):
        list(stream_student(student, image(), (kb, mouse), num_frames=10))
    with pytest.raises(ConditionError, match="ended at latent frame 3"):
        list(stream_student(student, image(), TerminalActions(["w", "w", "q"], "universal"), num_frames=21))


# ------------------------------------------------------------------------------------------------------------
# Matrix-Game 2.0 distilled checkpoints (meta tensors shaped like the released files: no download)


def mg2_state_dict(mode: str) -> dict[str, torch.Tensor]:
    return {f"model.{k}": torch.empty(shape, device="meta") for k, shape in read_key_fixture(f"mg2_dit_{mode}_keys.txt").items()}


@pytest.mark.parametrize("mode", ["universal", "gta_drive", "templerun"])
def test_released_students_load_strictly_into_their_mode(mode):
    sd = mg2_state_dict(mode)
    dit, found = load_mg2_dit(sd)
    assert found == mode and dit.cfg.action.keyboard_dim == model.ACTION_MODES[mode].keyboard_dim
    assert dit.cfg.local_attn_size == CausalConfig.preset(f"mg2-{mode}").local_attn_frames
    assert all(p.is_meta for p in dit.parameters())
    assert load_mg2_dit(sd, mode=mode)[1] == mode


def test_a_checkpoint_of_another_mode_or_a_damaged_one_is_refused(tmp_path):
    with pytest.raises(ValueError, match="'gta_drive' checkpoint .* not 'universal'"):
        load_mg2_dit(mg2_state_dict("gta_drive"), mode="universal")
    sd = mg2_state_dict("universal")
    del sd["model.blocks.3.ffn.0.weight"]
    with pytest.raises(CheckpointMismatchError, match="blocks.3.ffn.0.weight"):
        load_mg2_dit(sd)
    base = {k.replace("blocks.0.", "blocks.15."): v for k, v in mg2_state_dict("universal").items() if "action_model" in k}
    with pytest.raises(ValueError, match="foundation"):
        load_mg2_dit({**mg2_state_dict("universal"), **base})
    # a file: the mode is read from the header before any tensor is loaded
    from safetensors.torch import save_file

    f = tmp_path / "gta_keyboard2dim.safetensors"
    save_file({"model.blocks.0.action_model.keyboard_embed.0.weight": torch.zeros(128, 2),
               "model.blocks.0.action_model.mouse_mlp.0.weight": torch.zeros(1, 1)}, str(f))
    with pytest.raises(ValueError, match="pass mode='gta_drive'"):
        load_student(f, mode="templerun", device="cpu")
    assert mg2_mode_from_shapes({"blocks.0.action_model.keyboard_embed.0.weight": (128, 7)}) == "templerun"
