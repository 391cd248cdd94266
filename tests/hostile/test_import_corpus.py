"""Corpus: hostile inputs to every importer (`playmill import sekai|generic|unreal|gta`).

Each case puts one broken item beside a valid sibling: the sibling is imported, the broken item is
quarantined with its reason (in the summary and in ``<work>/rejects/<source>-<name>.jsonl``), the exit code is
1, the sources are untouched and nothing is written outside the work folder. Bad options, settings (the
``imports:`` section, ``--set``) and mapping files exit 2 with nothing run, and so does a source folder that does
not exist; an empty input exits 1 (no empty success); inputs that are fine but unusual (a CSV byte-order mark, an
unsafe level name that is only text) import with exit 0.
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from capture.episode import list_episodes
from tests.hostile.conftest import N, sekai_extrinsics, ue_rows
from tests.hostile.harness import Spec, check, copy, set_cell, truncate

RANDOM = bytes(range(256)) * 16


def _imported(eps: Path, *names: str):
    def after(r):
        got = {p.name for p in list_episodes(eps)}
        for n in names:
            assert any(re.search(n, g) for g in got), f"{n} not imported; have {sorted(got)}\n{r.text}"
    return after


def _quarantined(rejects: Path, pattern: str):
    def after(r):
        files = sorted(rejects.glob("*.jsonl")) if rejects.is_dir() else []
        lines = [json.loads(x) for f in files for x in f.read_text().splitlines()]
        assert any(re.search(pattern, json.dumps(x)) for x in lines), f"no reject matching {pattern}: {lines}\n{r.text}"
    return after


def _both(*fns):
    def after(r):
        for f in fns:
            f(r)
    return after


# ---------------------------------------------------------------------------------------------- sekai


class _Evil:
    """Unpickling this would create a file: a .npz must never be read with pickle."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _npz(**arrays):
    return lambda d: np.savez(d / "bad_0_19.npz", **arrays)


def _evil_npz(d: Path) -> None:
    arr = np.empty(1, dtype=object)
    arr[0] = _Evil(str(d.parent / "PWNED"))
    with open(d / "bad_0_19.npz", "wb") as f:
        np.savez(f, extrinsic=arr)


SEKAI_CASES = [
    ("npz-missing", lambda d: None, [r"no camera file .*bad_0_19\.npz"]),
    ("npz-random-bytes", lambda d: (d / "bad_0_19.npz").write_bytes(RANDOM), [r"bad_0_19\.npz: not an \.npz archive"]),
    ("npz-empty", lambda d: (d / "bad_0_19.npz").write_bytes(b""), [r"bad_0_19\.npz: not an \.npz archive"]),
    ("npz-truncated", lambda d: (_npz(extrinsic=sekai_extrinsics(N))(d), truncate(d / "bad_0_19.npz", 0.6)),
     [r"bad_0_19\.npz: (not an \.npz archive|unreadable)"]),
    ("npz-object-array", lambda d: _npz(extrinsic=np.array([None, {"a": 1}], dtype=object))(d),
     [r"bad_0_19\.npz: 'extrinsic' is an object array, which would need pickle"]),
    ("npz-pickle-payload", _evil_npz, [r"bad_0_19\.npz: 'extrinsic' is an object array"]),
    ("npz-no-extrinsic", _npz(poses=sekai_extrinsics(N)), [r"bad_0_19\.npz: no 'extrinsic' array \(keys: \['poses'\]"]),
    ("npz-wrong-shape", _npz(extrinsic=np.zeros((N, 3, 4))), [r"bad_0_19\.npz: 'extrinsic' has shape \(20, 3, 4\)"]),
    ("npz-strings", _npz(extrinsic=np.array(["a", "b"])), [r"bad_0_19\.npz: 'extrinsic' has dtype <U1"]),
    ("npz-nan", lambda d: _npz(extrinsic=np.where(np.arange(N)[:, None, None] == 5, np.nan, sekai_extrinsics(N)))(d),
     [r"bad_0_19\.npz: 'extrinsic' matrix 5 has NaN or infinite values"]),
    ("npz-too-few", _npz(extrinsic=sekai_extrinsics(5)), [r"video has 20 frames but .*bad_0_19\.npz has 5 extrinsics"]),
    ("video-random-bytes", lambda d: (_npz(extrinsic=sekai_extrinsics(N))(d), (d / "bad_0_19.mp4").write_bytes(RANDOM)),
     [r"cannot read video .*bad_0_19\.mp4"]),
    ("video-empty", lambda d: (_npz(extrinsic=sekai_extrinsics(N))(d), (d / "bad_0_19.mp4").write_bytes(b"")),
     [r"cannot read video .*bad_0_19\.mp4"]),
]


@pytest.mark.parametrize("case", SEKAI_CASES, ids=[c[0] for c in SEKAI_CASES])
def test_import_sekai(case, tmp_path, sekai_src, capsys, caplog):
    _, breaks, expect = case
    src = copy(sekai_src, tmp_path / "in" / "sekai")
    if not (src / "bad_0_19.mp4").exists():
        (src / "bad_0_19.mp4").write_bytes((src / "good_0_19.mp4").read_bytes())
    breaks(src)
    work = tmp_path / "work"
    spec = Spec(["import", "sekai", src, "--out", work / "episodes", "--set", "imports.sekai.scale_cm=500"], 1,
                [r"import sekai: 1 episode\(s\) written, 0 already there, 1 failed", r"FAILED bad_0_19\.mp4", *expect],
                inputs=[src], outputs=[work],
                after=_both(_imported(work / "episodes", r"^sekai-good-"),
                            _quarantined(work / "rejects", r"bad_0_19")))
    check(spec, tmp_path, capsys, caplog)
    assert not (tmp_path / "in" / "PWNED").exists()


def _sekai_cfg(ws: Path, text: str) -> Path:
    """A pipeline config whose ``imports: {sekai: ...}`` section is ``text`` (indented YAML)."""
    p = ws / "cfg" / "pipeline.yaml"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("imports:\n  sekai:\n" + "".join(f"    {line}\n" for line in text.splitlines()))
    return p


SEKAI_CONFIG_CASES = [
    ("move-threshold-negative", "move_threshold: -1",
     r"pipeline\.yaml: imports\.sekai\.move_threshold: -1 is not allowed; expected a number >= 0"),
    ("scale-zero", "scale_cm: 0", r"imports\.sekai\.scale_cm: 0 is not allowed; expected a number > 0"),
    ("workers-zero", "workers: 0", r"imports\.sekai\.workers: 0 is not allowed; expected an integer >= 1"),
    ("deadzone-string", "rotation_deadzone_deg: lots", r"imports\.sekai\.rotation_deadzone_deg: 'lots' is not allowed"),
    ("deadzone-half-turn", "rotation_deadzone_deg: 180",
     r"imports\.sekai\.rotation_deadzone_deg: 180 is not allowed; expected a number in \[0, 180\)"),
    ("keys-without-w", "keys: [a, s, d]",
     r"imports\.sekai\.keys: \['a', 's', 'd'\] is not allowed; expected an action space with the keys the import "
     r"infers \(missing \['w'\]\)"),
    ("unknown-key", "colour: red", r"imports\.sekai\.colour: unknown key"),
    ("not-a-mapping", "- 1\n- 2", r"imports\.sekai: \[1, 2\] is not allowed; expected a mapping with keys scale_cm"),
    ("not-yaml", "a: [1,", r"pipeline\.yaml: not valid YAML"),
]


@pytest.mark.parametrize("case", SEKAI_CONFIG_CASES, ids=[c[0] for c in SEKAI_CONFIG_CASES])
def test_import_sekai_bad_settings(case, tmp_path, sekai_src, capsys, caplog):
    _, text, expect = case
    src = copy(sekai_src, tmp_path / "in" / "sekai")
    cfg = _sekai_cfg(tmp_path, text)
    check(Spec(["import", "sekai", src, "--out", tmp_path / "work" / "episodes", "--config", cfg], 2,
               [expect, "Nothing was run"],
               inputs=[src, cfg], outputs=[tmp_path / "work"]), tmp_path, capsys, caplog)
    assert not list_episodes(tmp_path / "work" / "episodes")


def test_import_sekai_empty_or_missing_folder(tmp_path, capsys, caplog):
    (tmp_path / "in" / "empty").mkdir(parents=True)
    check(Spec(["import", "sekai", tmp_path / "in" / "empty", "--out", tmp_path / "work" / "episodes"], 1,
               [r"import sekai: nothing imported: no \*\.mp4 clip under .*empty"], inputs=[tmp_path / "in"],
               outputs=[tmp_path / "work"]), tmp_path, capsys, caplog)
    check(Spec(["import", "sekai", tmp_path / "in" / "nowhere", "--out", tmp_path / "work" / "episodes"], 2,
               [r"nowhere: no such folder or file"], inputs=[tmp_path / "in"], outputs=[tmp_path / "work"]),
          tmp_path, capsys, caplog)


# ---------------------------------------------------------------------------------------------- generic

GENERIC_MAPPING = "keys: {w: fwd}\nd_yaw: turn\nscene: clip\n"


def _generic_csv(n: int = N) -> str:
    return "frame,fwd,turn\n" + "".join(f"{i},{int(i > 0)},{0.5 if i else 0}\n" for i in range(n))


def _generic_ws(ws: Path, video_src: Path, csv_text: str | bytes, mapping: str = GENERIC_MAPPING):
    d = ws / "in" / "generic"
    d.mkdir(parents=True)
    mp4 = copy(video_src, d / "clip.mp4")
    csv = d / "actions.csv"
    csv.write_bytes(csv_text if isinstance(csv_text, bytes) else csv_text.encode())
    m = d / "mapping.yaml"
    m.write_text(mapping)
    return d, mp4, csv, m


GENERIC_BAD_DATA = [
    ("csv-nan", _generic_csv().replace("3,1,0.5", "3,1,nan"),
     [r"actions\.csv: column 'turn' \(d_yaw\) has an empty or non-numeric cell at row 3"]),
    ("csv-text-cell", _generic_csv().replace("4,1,0.5", "4,1,left"),
     [r"actions\.csv: column 'turn' \(d_yaw\) has an empty or non-numeric cell at row 4"]),
    ("csv-missing-column", "frame,fwd\n" + "".join(f"{i},1\n" for i in range(N)),
     [r"actions\.csv: column 'turn' \(mapped to d_yaw\) is not in the CSV"]),
    ("csv-empty", "", [r"actions\.csv: unreadable CSV"]),
    ("csv-rows-vs-frames", _generic_csv(7), [r"actions\.csv: 7 rows but .*clip\.mp4 has 20 frames"]),
    ("csv-not-utf8", b"frame,fwd,turn\n0,\xff\xfe,1\n", [r"actions\.csv: unreadable CSV"]),
]


@pytest.mark.parametrize("case", GENERIC_BAD_DATA, ids=[c[0] for c in GENERIC_BAD_DATA])
def test_import_generic_bad_data(case, tmp_path, video_src, capsys, caplog):
    _, text, expect = case
    d, mp4, csv, m = _generic_ws(tmp_path, video_src, text)
    work = tmp_path / "work"
    check(Spec(["import", "generic", mp4, csv, "--mapping", m, "--out", work / "episodes"], 1,
               [r"import generic: 0 episode\(s\) written, 0 already there, 1 failed", r"FAILED clip\.mp4: ", *expect],
               inputs=[d], outputs=[work],
               after=_quarantined(work / "rejects", r"actions\.csv")), tmp_path, capsys, caplog)


def test_import_generic_bad_video(tmp_path, video_src, capsys, caplog):
    d, mp4, csv, m = _generic_ws(tmp_path, video_src, _generic_csv())
    mp4.write_bytes(RANDOM)
    work = tmp_path / "work"
    check(Spec(["import", "generic", mp4, csv, "--mapping", m, "--out", work / "episodes"], 1,
               [r"cannot read video .*clip\.mp4"], inputs=[d], outputs=[work],
               after=_quarantined(work / "rejects", r"clip\.mp4")), tmp_path, capsys, caplog)


GENERIC_BAD_MAPPING = [
    ("scene-traversal", "scene: ../../escaped\n",
     r"mapping\.yaml: scene: '\.\./\.\./escaped' is not allowed; expected a safe name .*: it contains a path separator"),
    ("scene-nul", "scene: \"a\\0b\"\n", r"mapping\.yaml: scene: 'a\\x00b' is not allowed; .*it contains a NUL byte"),
    ("unknown-key", "colums: {}\n", r"mapping\.yaml: colums: unknown key \(allowed here: .*keys, key_threshold, keys_column"),
    ("not-a-mapping", "just text\n", r"mapping\.yaml: \(top level\): 'just text' is not allowed; expected a mapping"),
]


@pytest.mark.parametrize("case", GENERIC_BAD_MAPPING, ids=[c[0] for c in GENERIC_BAD_MAPPING])
def test_import_generic_bad_mapping(case, tmp_path, video_src, capsys, caplog):
    _, mapping, expect = case
    d, mp4, csv, m = _generic_ws(tmp_path, video_src, _generic_csv(), mapping)
    work = tmp_path / "work"
    check(Spec(["import", "generic", mp4, csv, "--mapping", m, "--out", work / "episodes"], 2, [expect],
               inputs=[d], outputs=[work]), tmp_path, capsys, caplog)
    assert not list_episodes(work / "episodes")


def test_import_generic_byte_order_mark_and_rerun(tmp_path, video_src, capsys, caplog):
    d, mp4, csv, m = _generic_ws(tmp_path, video_src, b"\xef\xbb\xbf" + _generic_csv().encode())
    work = tmp_path / "work"
    argv = ["import", "generic", mp4, csv, "--mapping", m, "--out", work / "episodes"]
    check(Spec(argv, 0, [r"import generic: 1 episode\(s\) written, 0 already there, 0 failed, 20 frames"], inputs=[d],
               outputs=[work], after=_imported(work / "episodes", r"^generic-clip-")), tmp_path, capsys, caplog)
    check(Spec(argv, 0, [r"import generic: 0 episode\(s\) written, 1 already there, 0 failed"], inputs=[d],
               outputs=[work]), tmp_path, capsys, caplog)


# ---------------------------------------------------------------------------------------------- unreal


def _ue_csv(edit=None, text: str | bytes | None = None):
    def f(d: Path) -> None:
        if text is not None:
            data = text if isinstance(text, bytes) else text.encode()
        else:
            data = ("\n".join(edit(ue_rows())) + "\n").encode()
        (d / "bad.csv").write_bytes(data)
    return f


def _ue_cell(row: int, col: str, value: str):
    return _ue_csv(lambda rows: set_cell(rows, row, col, value))


UNREAL_CASES = [
    ("csv-only", lambda d: ((d / "bad.mp4").unlink(), _ue_csv(lambda r: r)(d)), [r"bad\.csv: no matching MP4 video"]),
    ("mp4-only", lambda d: None, [r"bad\.mp4: no matching CSV"]),
    ("missing-column", _ue_csv(lambda r: [",".join(c for j, c in enumerate(x.split(",")) if j != 7) for x in r]),
     [r"bad\.csv:1 column 'yaw_deg': missing column"]),
    ("duplicate-column", _ue_csv(lambda r: [r[0] + ",frame"] + [x + ",0" for x in r[1:]]),
     [r"bad\.csv:1: duplicate column\(s\) \['frame'\]"]),
    ("time-backwards", _ue_cell(5, "time_s", "0.01"), [r"bad\.csv:7 column 'time_s': time must increase"]),
    ("nan-cell", _ue_cell(3, "x_cm", "nan"), [r"bad\.csv:5 column 'x_cm': 'nan' is not finite"]),
    ("text-cell", _ue_cell(3, "y_cm", "north"), [r"bad\.csv:5 column 'y_cm': 'north' is not a number"]),
    ("pitch-range", _ue_cell(2, "pitch_deg", "120"), [r"bad\.csv:4 column 'pitch_deg': pitch 120\.0 deg is outside \[-90, 90\]"]),
    ("unknown-key", _ue_cell(4, "keys", "Q"), [r"bad\.csv:6 column 'keys': unknown key 'Q'"]),
    ("ragged-row", _ue_csv(lambda r: r[:3] + [r[3] + ",9,9"] + r[4:]), [r"bad\.csv:4: has 13 cells, the header has 11"]),
    ("frame-gap", _ue_cell(6, "frame", "60"), [r"bad\.csv:8 column 'frame': frame numbers must increase by 1"]),
    ("collision-value", _ue_csv(lambda r: [r[0] + ",collision"] + [x + ",2" for x in r[1:]]),
     [r"column 'collision': collision must be 0 or 1, got 2\.0"]),
    ("csv-empty", _ue_csv(text=""), [r"bad\.csv:1: the CSV is empty"]),
    ("csv-header-only", _ue_csv(text=ue_rows()[0] + "\n"), [r"bad\.csv:2: the CSV has a header but no rows"]),
    ("csv-not-utf8", _ue_csv(text=b"frame,time_s\n\xff\xff\n"), [r"bad\.csv: cannot read the CSV"]),
    ("rows-vs-frames", _ue_csv(lambda r: r[:11]), [r"bad\.mp4: the video has 20 frames but bad\.csv has 10 rows"]),
    ("video-random", lambda d: (_ue_csv(lambda r: r)(d), (d / "bad.mp4").write_bytes(RANDOM)), [r"cannot read video .*bad\.mp4"]),
    ("video-empty", lambda d: (_ue_csv(lambda r: r)(d), (d / "bad.mp4").write_bytes(b"")), [r"cannot read video .*bad\.mp4"]),
    ("sidecar-not-json", lambda d: (_ue_csv(lambda r: r)(d), (d / "bad.json").write_text("{level")),
     [r"bad\.json: unreadable JSON sidecar"]),
    ("sidecar-level-number", lambda d: (_ue_csv(lambda r: r)(d), (d / "bad.json").write_text('{"level": 5}')),
     [r"bad\.json column 'level': 'level' must be a non-empty string"]),
    ("sidecar-config-list", lambda d: (_ue_csv(lambda r: r)(d), (d / "bad.json").write_text('{"config": [1]}')),
     [r"bad\.json column 'config': 'config' must be an object"]),
]


@pytest.mark.parametrize("case", UNREAL_CASES, ids=[c[0] for c in UNREAL_CASES])
def test_import_unreal(case, tmp_path, unreal_src, capsys, caplog):
    _, breaks, expect = case
    src = copy(unreal_src, tmp_path / "in" / "unreal")
    (src / "bad.mp4").write_bytes((src / "good.mp4").read_bytes())
    breaks(src)
    work = tmp_path / "work"
    check(Spec(["import", "unreal", src, "--out", work / "episodes"], 1,
               [r"import unreal: 1 episode\(s\) written, 0 already there, 1 failed", r"FAILED bad: ", *expect],
               inputs=[src],
               outputs=[work], after=_both(_imported(work / "episodes", r"^unreal_export-good-"),
                                           _quarantined(work / "rejects", r'"recording": "bad"'))),
          tmp_path, capsys, caplog)


def test_import_unreal_unusual_but_fine(tmp_path, unreal_src, capsys, caplog):
    """A byte-order mark, a level name that would be a path (it is only the scene text), a name with spaces."""
    src = copy(unreal_src, tmp_path / "in" / "unreal")
    (src / "bom.mp4").write_bytes((src / "good.mp4").read_bytes())
    (src / "bom.csv").write_bytes(b"\xef\xbb\xbf" + (src / "good.csv").read_bytes())
    (src / "my take 1.mp4").write_bytes((src / "good.mp4").read_bytes())
    (src / "my take 1.csv").write_bytes((src / "good.csv").read_bytes())
    (src / "my take 1.json").write_text(json.dumps({"level": "../../../ESCAPED"}))
    work = tmp_path / "work"
    check(Spec(["import", "unreal", src, "--out", work / "episodes"], 0,
               [r"import unreal: 3 episode\(s\) written, 0 already there, 0 failed"], inputs=[src], outputs=[work],
               after=_imported(work / "episodes", r"^unreal_export-bom-", r"^unreal_export-my_take_1-")),
          tmp_path, capsys, caplog)


def test_import_unreal_empty_or_missing_folder(tmp_path, capsys, caplog):
    (tmp_path / "in" / "empty").mkdir(parents=True)
    (tmp_path / "in" / "empty" / "notes.txt").write_text("no recordings here")
    work = tmp_path / "work"
    check(Spec(["import", "unreal", tmp_path / "in" / "empty", "--out", work / "episodes"], 1,
               [r"import unreal: nothing imported: no recordings \(<name>\.mp4 \+ <name>\.csv\) under"],
               inputs=[tmp_path / "in"], outputs=[work]), tmp_path, capsys, caplog)
    check(Spec(["import", "unreal", tmp_path / "in" / "nowhere", "--out", work / "episodes"], 2,
               [r"nowhere: no such folder"], inputs=[tmp_path / "in"], outputs=[work]),
          tmp_path, capsys, caplog)


# ---------------------------------------------------------------------------------------------- gta


def _header(edit):
    def f(d: Path) -> None:
        lines = (d / "behaviour.jsonl").read_text().splitlines(keepends=True)
        head = json.loads(lines[0])
        edit(head)
        lines[0] = json.dumps(head) + "\n"
        (d / "behaviour.jsonl").write_text("".join(lines))
    return f


def _hset(key, value):
    return _header(lambda h: h.__setitem__(key, value))


GTA_CASES = [
    ("session-id-traversal", _hset("session_id", "a/../../../ESCAPED"),
     [r"session_id 'a/\.\./\.\./\.\./ESCAPED' is not a safe name: contains a path separator"]),
    ("session-id-dotdot", _hset("session_id", ".."), [r"session_id '\.\.' is not a safe name: contains '\.\.'"]),
    ("session-id-nul", _hset("session_id", "s\x00x"), [r"session_id 's\\x00x' is not a safe name: contains a NUL byte"]),
    ("session-id-empty", _hset("session_id", ""), [r"session_id '' is not a safe name: is empty"]),
    ("session-id-number", _hset("session_id", 7), [r"session_id '7' is not a safe name: must be a string"]),
    ("header-not-json", lambda d: (d / "behaviour.jsonl").write_text("{header\n"),
     [r"behaviour\.jsonl:1: the session header is not valid JSON"]),
    ("log-empty", lambda d: (d / "behaviour.jsonl").write_text(""), [r"behaviour\.jsonl: empty file"]),
    ("log-missing", lambda d: (d / "behaviour.jsonl").unlink(), [r"bad: no behaviour log behaviour\.jsonl"]),
    ("version-unknown", _hset("version", 99), [r"behaviour\.jsonl:1: unknown schema version 99"]),
    ("schema-unknown", _hset("schema", "other.format"), [r"behaviour\.jsonl:1: unknown recording schema 'other\.format'"]),
    ("scenario-out-of-range", _header(lambda h: h["scenario"].__setitem__("ped_density", 9.0)),
     [r"behaviour\.jsonl:1: invalid scenario", r"ped_density: 9\.0 is outside the allowed range"]),
    ("sync-marker-not-object", _hset("sync_marker", "grid"), [r"behaviour\.jsonl:1: sync_marker must be an object"]),
    ("no-video", lambda d: (d / "video.mp4").unlink(), [r"bad: no video \(\.mp4, \.mkv, \.mov\)"]),
    ("two-videos", lambda d: (d / "second.mkv").write_bytes((d / "video.mp4").read_bytes()), [r"several videos"]),
    ("video-random", lambda d: (d / "video.mp4").write_bytes(RANDOM), [r"cannot read video .*bad/video\.mp4"]),
]


@pytest.mark.parametrize("case", GTA_CASES, ids=[c[0] for c in GTA_CASES])
def test_import_gta(case, tmp_path, gta_src, capsys, caplog):
    _, breaks, expect = case
    good = copy(gta_src, tmp_path / "in" / "gta" / "good")
    bad = copy(gta_src, tmp_path / "in" / "gta" / "bad")
    breaks(bad)
    work = tmp_path / "work"
    check(Spec(["import", "gta", good, bad, "--out", work / "episodes", "--min-frames", "17"], 1,
               [r"import gta: 1 episode\(s\) written, 0 already there, 1 failed", r"FAILED .*bad: ", *expect],
               inputs=[good, bad],
               outputs=[work], after=_both(_imported(work / "episodes", r"^gta-sim_drive_sim_00000003-"),
                                           _quarantined(work / "rejects", r'"recording": ".*bad"'))),
          tmp_path, capsys, caplog)
    assert not list(tmp_path.parent.glob("ESCAPED*")) and not list(tmp_path.rglob("ESCAPED*"))


def test_import_gta_video_shorter_than_a_clip_is_not_success(tmp_path, gta_src, capsys, caplog):
    rec = copy(gta_src, tmp_path / "in" / "gta" / "rec")
    work = tmp_path / "work"
    check(Spec(["import", "gta", rec, "--out", work / "episodes", "--min-frames", "500"], 1,
               [r"import gta: 0 episode\(s\) written, 0 already there, 1 failed", r"no episode: no run of usable frames reaches "
                r"min_episode_frames = 500", r"rejects/gta-sim-00000003\.jsonl"],
               inputs=[rec], outputs=[work]), tmp_path, capsys, caplog)


def test_import_gta_unusual_but_fine(tmp_path, gta_src, capsys, caplog):
    """Byte-order marks in both log files and a log cut off mid-line: imported, the cut line quarantined."""
    rec = copy(gta_src, tmp_path / "in" / "gta" / "rec")
    for name in ("behaviour.jsonl", "ticks.csv"):
        (rec / name).write_bytes(b"\xef\xbb\xbf" + (rec / name).read_bytes())
    log = (rec / "behaviour.jsonl").read_bytes()
    (rec / "behaviour.jsonl").write_bytes(log[: log.rstrip(b"\n").rfind(b"\n") + 40])  # footer cut mid-line
    work = tmp_path / "work"
    check(Spec(["import", "gta", rec, "--out", work / "episodes", "--min-frames", "17"], 0,
               [r"import gta: 1 episode\(s\) written, 0 already there, 0 failed", r"truncated last line|span\(s\) quarantined"],
               inputs=[rec], outputs=[work]), tmp_path, capsys, caplog)


def test_import_gta_video_option_cannot_leave_the_recording(tmp_path, gta_src, capsys, caplog):
    rec = copy(gta_src, tmp_path / "in" / "gta" / "rec")
    (tmp_path / "in" / "outside.mp4").write_bytes((rec / "video.mp4").read_bytes())
    check(Spec(["import", "gta", rec, "--out", tmp_path / "work" / "episodes", "--set", "imports.gta.video=../outside.mp4"],
               2, [r"imports\.gta\.video: '\.\./outside\.mp4' is not allowed; expected a safe name .*: it contains a "
                   r"path separator"],
               inputs=[tmp_path / "in"], outputs=[tmp_path / "work"]), tmp_path, capsys, caplog)
