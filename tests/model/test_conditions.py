"""Dataset actions -> model conditions: keyboard mapping, mouse scale, clip geometry checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from model.conditions import (
    MG2_CAM_VALUE,
    NO_KEY,
    ConditionError,
    ConditionSpec,
    actions_from_table,
    build_condition_spec,
    check_num_frames,
    mouse_scale_from_clips,
    mouse_scale_from_manifest,
    resolve_keyboard_map,
    trim_clip,
    typical_turn_deg,
)

KEYS = ("w", "s", "a", "d", "space", "shift", "ctrl", "lmb", "rmb")


def spec(mode: str = "universal", keys=KEYS, **kw) -> ConditionSpec:
    return build_condition_spec(mode, keys, num_frames=17, height=64, width=112, mouse_scale=0.05, **kw)


def test_universal_maps_wsad_in_model_order():
    s = spec()
    assert s.keyboard_map == (("w", "w"), ("s", "s"), ("a", "a"), ("d", "d"))
    kb = torch.zeros(2, 17, len(KEYS), dtype=torch.uint8)
    kb[0, :, KEYS.index("d")] = 1
    kb[1, 3:, KEYS.index("w")] = 1
    kb[1, :, KEYS.index("space")] = 1  # not mapped: ignored
    out = s.keyboard(kb)
    assert out.shape == (2, 17, 4) and out.dtype == torch.float32
    assert out[0, :, 3].eq(1).all() and out[0, :, :3].eq(0).all()
    assert out[1, 3:, 0].eq(1).all() and out[1, :3].eq(0).all()


def test_gta_drive_maps_w_s_to_forward_back_and_custom_maps():
    s = spec("gta_drive")
    assert s.keyboard_map == (("forward", "w"), ("back", "s"))
    s2 = spec("gta_drive", keyboard_map={"forward": "shift"})
    assert s2.keyboard_map == (("forward", "shift"), ("back", "s"))
    kb = torch.zeros(1, 17, len(KEYS))
    kb[0, 5, KEYS.index("shift")] = 1
    assert s2.keyboard(kb)[0, 5].tolist() == [1.0, 0.0]


def test_templerun_needs_its_keys_and_nomove_is_derived():
    tr_keys = ("jump", "slide", "turnleft", "turnright", "leftside", "rightside")
    s = build_condition_spec("templerun", tr_keys, num_frames=5, height=64, width=112)
    assert s.keyboard_map[0] == ("nomove", NO_KEY)
    assert s.mouse(torch.zeros(1, 5, 2)) is None and s.mouse_scale == 0.0
    kb = torch.zeros(1, 5, 6)
    kb[0, 2, 0] = 1  # jump on frame 2
    out = s.keyboard(kb)
    assert out.shape == (1, 5, 7)
    assert out[0, :, 0].tolist() == [1, 1, 0, 1, 1]  # nomove = no other key held
    assert out[0, 2, 1] == 1
    with pytest.raises(ConditionError, match=r"lacks keys.*jump <- jump.*keyboard_map"):
        build_condition_spec("templerun", KEYS, num_frames=5, height=64, width=112)


def test_missing_key_error_names_keys_and_the_fix():
    with pytest.raises(ConditionError) as e:
        resolve_keyboard_map("universal", ("up", "down", "left", "right"))
    msg = str(e.value)
    assert "w <- w" in msg and "d <- d" in msg and "['up', 'down', 'left', 'right']" in msg and "keyboard_map" in msg
    assert resolve_keyboard_map("universal", ("up", "down", "left", "right"),
                                {"w": "up", "s": "down", "a": "left", "d": "right"})[0] == ("w", "up")
    with pytest.raises(ConditionError, match="not a key of mode"):
        resolve_keyboard_map("universal", KEYS, {"jump": "space"})


def test_mouse_scale_maps_typical_turn_to_cam_value():
    rng = np.random.default_rng(0)
    # 70 % still, 30 % turning at +-3 deg/frame (with jitter)
    yaw = np.where(rng.random(10_000) < 0.3, rng.choice([-3.0, 3.0], 10_000) + rng.normal(0, 0.05, 10_000), 0.0)
    clips = [np.stack([np.zeros(100), yaw[i : i + 100]], 1) for i in range(0, 10_000, 100)]
    scale = mouse_scale_from_clips(clips)
    assert scale * 3.0 == pytest.approx(MG2_CAM_VALUE, rel=0.05)
    q = {str(a): float(b) for a, b in zip((0.01, 0.05, 0.95, 0.99), np.quantile(yaw, (0.01, 0.05, 0.95, 0.99)))}
    manifest = {"stats": {"mouse": {"d_yaw": {"count": len(yaw), "min": yaw.min(), "max": yaw.max(), "quantiles": q}}}}
    assert mouse_scale_from_manifest(manifest) == pytest.approx(scale, rel=1e-9)
    # rarely turning (3 % of frames): falls back to the 1 %/99 % quantiles
    rare = np.zeros(10_000)
    rare[:150], rare[150:300] = 2.0, -2.0
    assert typical_turn_deg(rare) == pytest.approx(2.0)
    with pytest.raises(ConditionError, match="never turns"):
        typical_turn_deg(np.zeros(100))
    s = build_condition_spec("universal", KEYS, num_frames=17, height=64, width=112, manifest=manifest)
    assert s.mouse(torch.tensor([[0.0, 3.0]]))[0, 1].item() == pytest.approx(0.1, rel=0.05)


def test_geometry_checks():
    assert check_num_frames(57) == 57 and check_num_frames(17) == 17
    for bad in (16, 56, 1, 3):
        with pytest.raises(ConditionError, match="1 \\+ 4k"):
            check_num_frames(bad)
    s = spec()
    s.check_dataset(64, 112, 57)
    with pytest.raises(ConditionError, match=r"clips are 640x352.*trains at 112x64"):
        s.check_dataset(352, 640, 57)
    with pytest.raises(ConditionError, match=r"clips have 9 frames; the model needs 17"):
        s.check_dataset(64, 112, 9)
    with pytest.raises(ConditionError, match="multiples of 16"):
        build_condition_spec("universal", KEYS, num_frames=17, height=60, width=112, mouse_scale=1.0)
    x = torch.arange(20).view(1, 20)
    assert trim_clip(x, 17).shape == (1, 17)
    with pytest.raises(ConditionError):
        trim_clip(x, 21)


def test_spec_round_trips_and_reads_action_tables(tmp_path):
    s = spec()
    assert ConditionSpec.from_dict(s.to_dict()) == s
    df = pd.DataFrame({"frame": range(5), "key_w": [0, 1, 1, 1, 0], "key_d": [0, 0, 1, 0, 0],
                       "key_s": 0, "key_a": 0, "d_pitch": 0.0, "d_yaw": [0, 2, 2, 2, 2]})
    p = tmp_path / "a.csv"
    df.to_csv(p, index=False)
    kb, mouse = actions_from_table(p, s)
    assert kb.shape == (5, len(KEYS)) and kb[:, 0].tolist() == [0, 1, 1, 1, 0] and kb[2, 3] == 1
    assert mouse[:, 1].tolist() == [0, 2, 2, 2, 2]
    kb2, _ = actions_from_table({"w": [1, 0], "s": [0, 0], "a": [0, 0], "d": [0, 1], "d_pitch": [0, 0], "d_yaw": [0, 0]}, s)
    assert kb2[:, 0].tolist() == [1, 0]
    with pytest.raises(ConditionError, match=r"lack columns \['key_a'"):
        actions_from_table(df.drop(columns=["key_a"]), s)
