"""Corpus: broken weights and generation inputs (`playmill generate`, `playmill encode-latents`, `playmill rl eval`,
training resume, the actions CSV and first frame of generation).

Weights are only ever read with safetensors or ``torch.load(weights_only=True)``: a file that would need pickle is
refused, never run, and no message suggests loading it unsafely.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from tests.hostile.harness import Spec, check, copy, flip_byte, truncate

RANDOM = bytes(range(256)) * 16


def _gen_inputs(ws: Path) -> tuple[Path, Path]:
    import cv2

    d = ws / "in"
    d.mkdir(parents=True, exist_ok=True)
    img = d / "first.png"
    cv2.imwrite(str(img), np.full((48, 64, 3), 120, np.uint8))
    actions = d / "actions.csv"
    actions.write_text("key_w,key_s,key_a,key_d,d_pitch,d_yaw\n" + "1,0,0,0,0,0.5\n" * 17)
    return img, actions


def _safetensors_header_len(p: Path) -> int:
    return struct.unpack("<Q", p.read_bytes()[:8])[0]


def _rewrite_meta(meta: str):
    """A valid safetensors file whose playmill metadata is ``meta`` (raw text)."""
    def f(p: Path) -> None:
        from safetensors.torch import save_file
        import torch

        save_file({"w": torch.zeros(2)}, str(p), metadata={"playmill": meta})
    return f


# (id, how to break dit_ema.safetensors, regexes)
CHECKPOINT_CASES = [
    ("empty", lambda p: p.write_bytes(b""), [r"not a readable safetensors file: the file is empty \(0 bytes\)"]),
    ("four-bytes", lambda p: p.write_bytes(b"\x01\x02\x03\x04"), [r"the file has 4 bytes, too few for a safetensors header"]),
    ("random-bytes", lambda p: p.write_bytes(RANDOM), [r"its first 8 bytes announce a \d+-byte header but the file has 4096 bytes"]),
    ("truncated", lambda p: truncate(p, 0.6), [r"the header describes \d+ bytes of tensors but \d+ follow it \(truncated\)"]),
    ("header-length-flipped", lambda p: flip_byte(p, 7), [r"its first 8 bytes announce a \d+-byte header"]),
    ("header-json-flipped", lambda p: flip_byte(p, 8), [r"its header is not valid JSON"]),
    ("zip-not-safetensors", lambda p: p.write_bytes(b"PK\x03\x04" + RANDOM), [r"not a readable safetensors file"]),
    ("no-run-description", _rewrite_meta("{}"), [r"no playmill run description in its metadata"]),
    ("meta-not-json", _rewrite_meta("{oops"), [r"its metadata 'playmill' is not valid JSON"]),
    ("meta-not-object", _rewrite_meta("[1, 2]"), [r"its metadata 'playmill' is a list, expected a JSON object"]),
]


@pytest.mark.parametrize("case", CHECKPOINT_CASES, ids=[c[0] for c in CHECKPOINT_CASES])
def test_generate_with_a_broken_checkpoint(case, tmp_path, weights_src, capsys, caplog):
    _, breaks, expect = case
    img, actions = _gen_inputs(tmp_path)
    ckpt = copy(weights_src, tmp_path / "in" / "dit_ema.safetensors")
    breaks(ckpt)
    out = tmp_path / "out"
    check(Spec(["generate", "--model", "base", "--checkpoint", ckpt, "--image", img, "--actions", actions,
                "-o", out / "v.mp4", "--steps", "1", "--device", "cpu", "--no-progress"], 1,
               [r"dit_ema\.safetensors", *expect], inputs=[tmp_path / "in"], outputs=[out]), tmp_path, capsys, caplog)
    assert not (out / "v.mp4").exists()


def test_generate_run_folders_that_point_elsewhere(tmp_path, capsys, caplog):
    img, actions = _gen_inputs(tmp_path)
    run = tmp_path / "in" / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "latest").write_text("../../../escape")
    base = ["generate", "--model", "base", "--image", img, "--actions", actions, "-o", tmp_path / "out" / "v.mp4",
            "--device", "cpu", "--no-progress"]
    check(Spec([*base, "--checkpoint", run], 1,
               [r"checkpoints/latest: names '\.\./\.\./\.\./escape', not a checkpoint folder .*contains a path separator"],
               inputs=[tmp_path / "in"], outputs=[tmp_path / "out"]), tmp_path, capsys, caplog)
    (run / "checkpoints" / "latest").write_text("step-000100")
    check(Spec([*base, "--checkpoint", run], 1, [r"run.*: a training run folder without a complete checkpoint"],
               inputs=[tmp_path / "in"], outputs=[tmp_path / "out"]), tmp_path, capsys, caplog)
    check(Spec([*base, "--checkpoint", tmp_path / "in" / "nothing.safetensors"], 2,
               [r"nothing\.safetensors: no such checkpoint"], inputs=[tmp_path / "in"], outputs=[tmp_path / "out"]),
          tmp_path, capsys, caplog)
    check(Spec([*base, "--checkpoint", run, "--steps", "0"], 2,
               [r"--steps 0: generate\.steps: 0 is not allowed; expected an integer in \[1, 1000\]"],
               inputs=[tmp_path / "in"], outputs=[tmp_path / "out"]), tmp_path, capsys, caplog)
    assert not (tmp_path / "out").exists()


class _Evil:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _torch_file(obj):
    def f(p: Path) -> None:
        import torch

        torch.save(obj(p) if callable(obj) else obj, p)
    return f


# (id, file name, how to write it, regexes) for `encode-latents --vae`
VAE_CASES = [
    ("safetensors-random", "vae.safetensors", lambda p: p.write_bytes(RANDOM), [r"vae\.safetensors: not a readable safetensors file"]),
    ("safetensors-empty", "vae.safetensors", lambda p: p.write_bytes(b""), [r"vae\.safetensors: not a readable safetensors file: the file is empty"]),
    ("pth-random", "Wan2.1_VAE.pth", lambda p: p.write_bytes(RANDOM),
     [r"Wan2\.1_VAE\.pth: cannot be read as torch weights without pickle", r"not a torch zip archive \(4096 bytes\)"]),
    ("pth-empty", "Wan2.1_VAE.pth", lambda p: p.write_bytes(b""), [r"Wan2\.1_VAE\.pth: cannot be read as torch weights without pickle"]),
    ("pth-pickle-payload", "Wan2.1_VAE.pth", _torch_file(lambda p: {"w": _Evil(str(p.parent.parent / "PWNED"))}),
     [r"Wan2\.1_VAE\.pth: cannot be read as torch weights without pickle \(weights_only=True refused it"]),
    ("pth-list", "Wan2.1_VAE.pth", _torch_file([1, 2, 3]), [r"Wan2\.1_VAE\.pth: holds a list, not a flat state dict of tensors"]),
    ("pth-wrong-keys", "Wan2.1_VAE.pth", _torch_file(lambda p: {"not.a.vae": __import__("torch").zeros(2)}),
     [r"Wan2\.1_VAE\.pth does not match the model: \d+ missing, 1 unexpected"]),
]


@pytest.mark.parametrize("case", VAE_CASES, ids=[c[0] for c in VAE_CASES])
def test_encode_latents_with_broken_vae_weights(case, tmp_path, shards_src, capsys, caplog):
    _, name, write, expect = case
    sh = copy(shards_src, tmp_path / "in" / "shards")
    vae = tmp_path / "in" / name
    write(vae)
    out = tmp_path / "out"
    check(Spec(["encode-latents", sh, "--vae", vae, "--out", out, "--device", "cpu", "--no-progress"], 1, expect,
               inputs=[tmp_path / "in"], outputs=[out]), tmp_path, capsys, caplog)
    assert not (tmp_path / "PWNED").exists()
    assert "weights_only=False" not in capsys.readouterr().err


RL_CASES = [
    ("random", lambda p: p.write_bytes(RANDOM), [r"policy\.zip: not a zip file"]),
    ("empty", lambda p: p.write_bytes(b""), [r"policy\.zip"]),
    ("zip-without-policy", lambda p: __import__("zipfile").ZipFile(p, "w").writestr("readme.txt", "hi"), [r"policy\.zip"]),
]


@pytest.mark.parametrize("case", RL_CASES, ids=[c[0] for c in RL_CASES])
def test_rl_eval_with_a_broken_policy(case, tmp_path, capsys, caplog):
    _, write, expect = case
    p = tmp_path / "in" / "policy.zip"
    p.parent.mkdir(parents=True)
    write(p)
    check(Spec(["rl", "eval", p, "--seeds", "1", "--steps", "10", "--workers", "1", "--out-dir", tmp_path / "out"], 1,
               [r"bad checkpoint", *expect], inputs=[p.parent], outputs=[tmp_path / "out"]), tmp_path, capsys, caplog)


# ---------------------------------------------------------------------------------------------- library level


def test_resume_state_json_broken(tmp_path):
    from model.bundle import read_state_json
    from model.checkpoint import CheckpointError

    d = tmp_path / "step-000010"
    d.mkdir()
    for text, why in (("{", r"state\.json: unreadable"), ("[]", r"state\.json: holds a list, expected a JSON object"),
                      ("\udcff", r"state\.json: unreadable")):
        (d / "state.json").write_text(text, errors="surrogateescape")
        with pytest.raises(CheckpointError, match=why):
            read_state_json(d)


def _spec():
    from model.conditions import build_condition_spec

    return build_condition_spec("universal", ("w", "s", "a", "d", "space", "shift", "ctrl", "lmb", "rmb"),
                                num_frames=17, height=48, width=64, mouse_scale=0.1)


ACTIONS_CASES = [
    ("nan", "key_w,key_s,key_a,key_d,d_pitch,d_yaw\n1,0,0,0,0,0\n1,0,0,0,nan,0\n",
     r"actions\.csv: row 1 column 'd_pitch': nan is not a finite number"),
    ("text", "key_w,key_s,key_a,key_d,d_pitch,d_yaw\n1,0,0,0,0,0\n1,0,yes,0,0,0\n",
     r"actions\.csv: row 1 column 'key_a': 'yes' is not a finite number"),
    ("inf", "key_w,key_s,key_a,key_d,d_pitch,d_yaw\n1,0,0,0,0,inf\n", r"row 0 column 'd_yaw'"),
    ("missing-column", "key_w,key_s,d_pitch,d_yaw\n1,0,0,0\n", r"actions\.csv: the actions lack columns \['key_a', 'key_d'\]"),
    ("header-only", "key_w,key_s,key_a,key_d,d_pitch,d_yaw\n", r"actions\.csv: no rows"),
    ("empty", "", r"actions\.csv: unreadable CSV"),
]


@pytest.mark.parametrize("case", ACTIONS_CASES, ids=[c[0] for c in ACTIONS_CASES])
def test_generation_actions_csv(case, tmp_path):
    from capture.errors import InputError
    from model.conditions import actions_from_table

    _, text, expect = case
    p = tmp_path / "actions.csv"
    p.write_text(text)
    with pytest.raises(InputError, match=expect):
        actions_from_table(p, _spec())


def test_generation_actions_csv_byte_order_mark_and_bad_image(tmp_path):
    from capture.errors import InputError
    from model.conditions import actions_from_table
    from model.sample import load_image

    p = tmp_path / "actions.csv"
    p.write_bytes(b"\xef\xbb\xbfkey_w,key_s,key_a,key_d,d_pitch,d_yaw\n1,0,0,0,0,0.5\n")
    kb, mouse = actions_from_table(p, _spec())
    assert kb[0, 0] == 1 and mouse[0, 1] == 0.5
    img = tmp_path / "first.png"
    img.write_bytes(RANDOM)
    with pytest.raises(InputError, match=r"cannot read image .*first\.png: not an image OpenCV can decode"):
        load_image(img, 48, 64)
