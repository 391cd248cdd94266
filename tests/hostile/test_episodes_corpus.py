"""Corpus: broken episodes (meta.json, actions.csv, video.mp4) through `playmill validate` and `playmill curate`.

Each validate case breaks one copy of a valid episode and validates it beside an intact sibling: exit 1, the
broken file and the problem named, the sibling reported ok, nothing written. Each curate case puts a broken
episode beside intact ones: the intact ones become clips, the broken one is rejected with its reason.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.hostile.harness import Spec, check, copy, flip_byte, set_cell, truncate


def _meta(key, value):
    def f(ep: Path) -> None:
        m = json.loads((ep / "meta.json").read_text())
        m[key] = value
        (ep / "meta.json").write_text(json.dumps(m))
    return f


def _csv(edit):
    def f(ep: Path) -> None:
        lines = (ep / "actions.csv").read_text().splitlines()
        (ep / "actions.csv").write_text("\n".join(edit(lines)) + "\n")
    return f


def _cell(row: int, col: str, value: str):
    return _csv(lambda lines: set_cell(lines, row, col, value))


def _write(name: str, data: bytes):
    return lambda ep: (ep / name).write_bytes(data)


def _remove(name: str):
    return lambda ep: (ep / name).unlink()


# (case id, how to break the episode, regexes the report must show besides the episode's name)
VALIDATE_CASES = [
    ("meta-missing", _remove("meta.json"), [r"meta\.json", r"missing"]),
    ("meta-not-json", _write("meta.json", b"{not json"), [r"meta\.json", r"JSON"]),
    ("meta-empty", _write("meta.json", b""), [r"meta\.json"]),
    ("meta-list", _write("meta.json", b"[1, 2]"), [r"meta\.json", r"object"]),
    ("meta-binary", _write("meta.json", bytes(range(256))), [r"meta\.json"]),
    ("meta-id-traversal", _meta("episode_id", "../../escaped"), [r"episode_id", r"not a safe folder name"]),
    ("meta-id-nul", _meta("episode_id", "a\x00b"), [r"episode_id", r"NUL"]),
    ("meta-id-long", _meta("episode_id", "x" * 300), [r"episode_id", r"characters long"]),
    ("meta-fps-zero", _meta("fps", 0), [r"fps", r"positive"]),
    ("meta-fps-string", _meta("fps", "fast"), [r"fps"]),
    ("meta-width-odd", _meta("width", 65), [r"width", r"even"]),
    ("meta-schema", _meta("schema", "playmill.episode/9"), [r"schema", r"playmill\.episode/1"]),
    ("meta-source", _meta("source", "quake"), [r"source", r"quake"]),
    ("meta-frame-count", _meta("frame_count", 31), [r"31"]),
    ("meta-action-space", _meta("action_space", {"keys": "w"}), [r"action_space"]),
    ("meta-sha", _meta("video_sha256", "0" * 64), [r"sha256"]),
    ("csv-missing", _remove("actions.csv"), [r"actions\.csv", r"missing"]),
    ("csv-empty", _write("actions.csv", b""), [r"actions\.csv", r"empty"]),
    ("csv-header-only", _csv(lambda lines: lines[:1]), [r"actions\.csv", r"rows"]),
    ("csv-column-missing", _csv(lambda lines: [",".join(l.split(",")[:-1]) for l in lines]), [r"actions\.csv"]),
    ("csv-not-number", _cell(3, "x", "abc"), [r"actions\.csv", r"row 3", r"'x'|x", r"not a number"]),
    ("csv-nan", _cell(4, "d_yaw", "nan"), [r"actions\.csv", r"row 4", r"d_yaw", r"not finite"]),
    ("csv-inf", _cell(5, "speed", "inf"), [r"actions\.csv", r"row 5", r"speed", r"not finite"]),
    ("csv-empty-cell", _cell(6, "qw", ""), [r"actions\.csv", r"row 6", r"qw", r"empty"]),
    ("csv-ragged", _csv(lambda lines: lines[:5] + [lines[5] + ",1"] + lines[6:]), [r"actions\.csv", r"row 4"]),
    ("csv-time-backwards", _cell(7, "t", "0.01"), [r"actions\.csv", r"row 7", r"\bt\b"]),
    ("csv-frame-number", _cell(8, "frame", "99"), [r"actions\.csv", r"row 8", r"frame"]),
    ("csv-quaternion", _cell(9, "qw", "2.0"), [r"actions\.csv", r"row 9", r"quaternion|norm"]),
    ("csv-key-value", _cell(10, "key_w", "2"), [r"actions\.csv", r"row 10", r"key_w"]),
    ("csv-not-utf8", _write("actions.csv", b"frame,t\n\xff\xfe\x00\x01\n"), [r"actions\.csv", r"UTF-8"]),
    ("video-missing", _remove("video.mp4"), [r"video\.mp4", r"missing"]),
    ("video-empty", _write("video.mp4", b""), [r"video\.mp4"]),
    ("video-random", _write("video.mp4", bytes(range(256)) * 40), [r"video\.mp4"]),
    ("video-truncated", lambda ep: truncate(ep / "video.mp4", 0.4), [r"video\.mp4"]),
    ("video-flipped", lambda ep: flip_byte(ep / "video.mp4", -200), [r"video\.mp4", r"sha256"]),
]


@pytest.fixture
def pair(tmp_path, episodes_src):
    """``(workspace, episodes folder, intact episode, episode to break)``."""
    eps = sorted(episodes_src.iterdir())
    folder = tmp_path / "in" / "episodes"
    good, bad = copy(eps[0], folder / eps[0].name), copy(eps[1], folder / eps[1].name)
    return tmp_path, folder, good, bad


@pytest.mark.parametrize("case", VALIDATE_CASES, ids=[c[0] for c in VALIDATE_CASES])
def test_validate(case, pair, capsys, caplog):
    _, breaks, expect = case
    ws, folder, good, bad = pair
    breaks(bad)

    def sibling_ok(r):
        assert re.search(rf"ok\s+.*{re.escape(good.name)}", r.out), r.out

    check(Spec(["validate", folder], 1, [rf"INVALID .*{re.escape(bad.name)}", *expect], inputs=[folder],
               after=sibling_ok), ws, capsys, caplog)


def test_validate_accepts_a_byte_order_mark(pair, capsys, caplog):
    ws, folder, good, bad = pair
    csv = bad / "actions.csv"
    csv.write_bytes(b"\xef\xbb\xbf" + csv.read_bytes())
    check(Spec(["validate", folder], 0, [rf"ok\s+.*{re.escape(bad.name)}", r"2 valid, 0 invalid"], inputs=[folder]),
          ws, capsys, caplog)


def test_validate_a_missing_path_and_an_empty_folder(tmp_path, capsys, caplog):
    (tmp_path / "in" / "empty").mkdir(parents=True)
    check(Spec(["validate", tmp_path / "in" / "nowhere"], 1, [r"nowhere: does not exist"],
               inputs=[tmp_path / "in"]), tmp_path, capsys, caplog)
    check(Spec(["validate", tmp_path / "in" / "empty"], 1, [r"empty: is neither an episode folder"], inputs=[tmp_path / "in"]),
          tmp_path, capsys, caplog)


# ---------------------------------------------------------------------------------------------- curate

CURATE_CASES = [
    ("video-random", _write("video.mp4", bytes(range(256)) * 40), r"video\.mp4|video"),
    ("video-truncated", lambda ep: truncate(ep / "video.mp4", 0.3), r"video"),
    ("meta-not-json", _write("meta.json", b"{"), r"meta\.json"),
    ("csv-nan-pose", _cell(4, "x", "nan"), r"non-finite poses at source frames \[4\]"),
    ("csv-missing", _remove("actions.csv"), r"actions\.csv"),
]


def _curate_config(ws: Path) -> Path:
    doc = {"workdir": str(ws / "work"), "curate": {"workers": 1, "clip": {"frames": 9, "stride": 9, "height": 32,
                                                                         "width": 64}}}
    p = ws / "in" / "pipeline.yaml"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(yaml.safe_dump(doc))
    return p


@pytest.mark.parametrize("case", CURATE_CASES, ids=[c[0] for c in CURATE_CASES])
def test_curate(case, tmp_path, episodes_src, capsys, caplog):
    _, breaks, expect = case
    eps = sorted(episodes_src.iterdir())
    work = tmp_path / "work"
    good = copy(eps[0], work / "episodes" / eps[0].name)
    bad = copy(eps[1], work / "episodes" / eps[1].name)
    breaks(bad)
    cfg = _curate_config(tmp_path)

    def sibling_curated(r):
        import pandas as pd

        clips = pd.concat(pd.read_parquet(p, columns=["episode_id"]) for p in (work / "shards" / "default").glob("part-*"))
        assert good.name in set(clips["episode_id"]), r.text
        rej = pd.read_parquet(work / "shards" / "default" / "rejects.parquet")
        assert bad.name in set(rej[rej["kind"] != "span"]["episode_id"])

    check(Spec(["curate", cfg, "--no-progress"], 0, [rf"rejected .*{re.escape(bad.name)}", expect],
               inputs=[work / "episodes", cfg], outputs=[work / "shards", work / "reports"], after=sibling_curated),
          tmp_path, capsys, caplog)


def test_curate_nothing_is_not_success(tmp_path, episodes_src, capsys, caplog):
    """No episodes at all, or only broken ones: exit 1 saying why (no empty success)."""
    cfg = _curate_config(tmp_path)
    (tmp_path / "work" / "episodes").mkdir(parents=True)
    check(Spec(["curate", cfg, "--no-progress"], 1, [r"no clips: no episodes in"], inputs=[cfg],
               outputs=[tmp_path / "work"]), tmp_path, capsys, caplog)
    bad = copy(sorted(episodes_src.iterdir())[0], tmp_path / "work" / "episodes" / "x")
    (bad / "video.mp4").write_bytes(b"not a video")
    check(Spec(["curate", cfg, "--no-progress"], 1, [r"no clips: all 1 episode\(s\) gave no clip",
                                                     r"rejected episode x"],
               inputs=[cfg, tmp_path / "work" / "episodes"],
               outputs=[tmp_path / "work" / "shards", tmp_path / "work" / "reports"]),
          tmp_path, capsys, caplog)
