"""Corpus: broken shards folders (manifest.json, Parquet shards, rejects) through `playmill inspect` and the
training reader (`playmill train`), and the reader's verification (sha256 and rows checked on open)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from curation.shards import ShardsError

from tests.hostile.harness import Spec, check, copy, flip_byte, truncate


def _manifest(edit):
    def f(d: Path) -> None:
        m = json.loads((d / "manifest.json").read_text())
        edit(m)
        (d / "manifest.json").write_text(json.dumps(m))
    return f


def _set(key, value):
    return _manifest(lambda m: m.__setitem__(key, value))


def _shard(key, value):
    return _manifest(lambda m: m["shards"][0].__setitem__(key, value))


def _part(fn):
    return lambda d: fn(d / "part-00000.parquet")


def _write(name, data: bytes):
    return lambda d: (d / name).write_bytes(data)


# (id, break, exit code of `inspect --verify`, regexes): every message names the file and the problem
INSPECT_CASES = [
    ("manifest-missing", lambda d: (d / "manifest.json").unlink(), [r"no manifest\.json"]),
    ("manifest-not-json", _write("manifest.json", b"{\"schema\": "), [r"manifest\.json: unreadable manifest"]),
    ("manifest-empty", _write("manifest.json", b""), [r"manifest\.json: unreadable manifest"]),
    ("manifest-list", _write("manifest.json", b"[]"), [r"manifest\.json: must be a JSON object"]),
    ("manifest-deep-nesting", _write("manifest.json", b"[" * 100000 + b"]" * 100000), [r"manifest\.json"]),
    ("manifest-schema", _set("schema", "playmill.shards/9"), [r"manifest\.json: schema is 'playmill\.shards/9'"]),
    ("manifest-no-shards", _manifest(lambda m: m.pop("shards")), [r"manifest\.json: missing field 'shards'"]),
    ("manifest-shards-dict", _set("shards", {"a": 1}), [r"manifest\.json: shards: expected a list"]),
    ("manifest-keys-string", _set("action_space", {"keys": "wasd"}), [r"manifest\.json: action_space"]),
    ("manifest-fps-zero", _set("fps", 0), [r"manifest\.json: fps: expected a positive number"]),
    ("manifest-height-negative", _set("height", -32), [r"manifest\.json: height: expected a positive integer"]),
    ("manifest-codec", _set("frame_codec", "vp9"), [r"manifest\.json: frame_codec: expected h264 or jpeg"]),
    ("shard-file-traversal", _shard("file", "../../escaped.parquet"),
     [r"manifest\.json: shards\[0\]\.file: '\.\./\.\./escaped\.parquet' contains a path separator"]),
    ("shard-file-absolute", _shard("file", "/etc/passwd"), [r"shards\[0\]\.file: '/etc/passwd' contains a path separator"]),
    ("shard-file-dotdot", _shard("file", ".."), [r"shards\[0\]\.file: '\.\.' contains '\.\.'"]),
    ("shard-rows-negative", _shard("rows", -1), [r"shards\[0\]\.rows: expected an integer >= 0"]),
    ("shard-rows-string", _shard("rows", "5"), [r"shards\[0\]\.rows: expected an integer >= 0"]),
    ("shard-sha-short", _shard("sha256", "abc"), [r"shards\[0\]\.sha256: expected 64 lower-case hex digits"]),
    ("shard-listed-twice", _manifest(lambda m: m["shards"].append(dict(m["shards"][0]))), [r"is listed twice"]),
    ("shard-missing", lambda d: (d / "part-00000.parquet").unlink(), [r"part-00000\.parquet: listed in the manifest but missing"]),
    ("shard-flipped", _part(lambda p: flip_byte(p, 200)), [r"part-00000\.parquet: sha256 \w+ does not match"]),
    ("shard-truncated", _part(lambda p: truncate(p, 0.5)), [r"part-00000\.parquet: \d+ bytes, the manifest says \d+"]),
    ("shard-random", _part(lambda p: p.write_bytes(bytes(range(256)) * 8)), [r"part-00000\.parquet: .*(bytes|sha256)"]),
    ("shard-empty", _part(lambda p: p.write_bytes(b"")), [r"part-00000\.parquet: 0 bytes"]),
    ("shard-wrong-sha-in-manifest", _shard("sha256", "0" * 64), [r"part-00000\.parquet: sha256 \w+ does not match the manifest's 0{64}"]),
    ("shard-wrong-rows-in-manifest", _shard("rows", 999), [r"part-00000\.parquet: \d+ rows, the manifest says 999"]),
    ("shard-unlisted", lambda d: (d / "part-00099.parquet").write_bytes(b"x"), [r"part-00099\.parquet: a shard file that the manifest does not list"]),
    ("rejects-missing", lambda d: (d / "rejects.parquet").unlink(), [r"rejects\.parquet: missing"]),
    ("rejects-flipped", lambda d: flip_byte(d / "rejects.parquet", 10), [r"rejects\.parquet: sha256 does not match"]),
    ("rejects-traversal", _manifest(lambda m: m["rejects"].__setitem__("file", "../x.parquet")), [r"manifest\.json: rejects"]),
    ("totals-wrong", _manifest(lambda m: m["totals"].__setitem__("clips", 1000)), [r"totals\.clips is 1000"]),
]


@pytest.mark.parametrize("case", INSPECT_CASES, ids=[c[0] for c in INSPECT_CASES])
def test_inspect_verify(case, tmp_path, shards_src, capsys, caplog):
    _, breaks, expect = case
    sh = copy(shards_src, tmp_path / "in" / "shards")
    breaks(sh)
    check(Spec(["inspect", sh, "--verify", "--no-report"], 1, expect, inputs=[sh]), tmp_path, capsys, caplog)


def test_inspect_accepts_a_byte_order_mark_in_the_manifest(tmp_path, shards_src, capsys, caplog):
    sh = copy(shards_src, tmp_path / "in" / "shards")
    (sh / "manifest.json").write_bytes(b"\xef\xbb\xbf" + (sh / "manifest.json").read_bytes())
    check(Spec(["inspect", sh, "--verify", "--no-report"], 0, [r"verify: ok"], inputs=[sh]), tmp_path, capsys, caplog)


# the training reader: `playmill train` opens the shards first and stops there, naming the file
TRAIN_CASES = [
    ("flipped-byte", _part(lambda p: flip_byte(p, 300)), [r"part-00000\.parquet: sha256 \w+ does not match",
                                                            r"--no-verify"]),
    ("wrong-manifest-sha", _shard("sha256", "f" * 64), [r"part-00000\.parquet: sha256 \w+ does not match the manifest's f{64}"]),
    ("truncated", _part(lambda p: truncate(p, 0.7)), [r"part-00000\.parquet: \d+ bytes, the manifest says"]),
    ("missing", lambda d: (d / "part-00000.parquet").unlink(), [r"part-00000\.parquet: listed in the manifest but missing"]),
    ("traversal", _shard("file", "../../../etc/passwd"), [r"shards\[0\]\.file: .* contains a path separator"]),
    ("rows", _shard("rows", 3), [r"part-00000\.parquet: \d+ rows, the manifest says 3"]),
]


@pytest.mark.parametrize("case", TRAIN_CASES, ids=[c[0] for c in TRAIN_CASES])
def test_train_reader_verifies_shards(case, tmp_path, shards_src, capsys, caplog):
    _, breaks, expect = case
    sh = copy(shards_src, tmp_path / "in" / "shards")
    breaks(sh)
    out = tmp_path / "out" / "run"
    check(Spec(["train", "--preset", "tiny", "--shards", sh, "--out", out, "--no-progress"], 1, expect,
               inputs=[sh], outputs=[out.parent]), tmp_path, capsys, caplog)


def test_no_verify_skips_the_sha256_but_still_names_an_unreadable_shard(tmp_path, shards_src):
    from curation.reader import ShardDataset, ShardsError

    sh = copy(shards_src, tmp_path / "shards")
    m = json.loads((sh / "manifest.json").read_text())
    m["shards"][0]["sha256"] = "0" * 64  # the file is intact; the manifest's record of it is not
    (sh / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ShardsError, match="sha256"):
        ShardDataset(sh, decode=False)
    ds = ShardDataset(sh, decode=False, verify=False)
    assert len(ds) == m["shards"][0]["rows"] and ds[0]["keyboard"].shape[0] == m["clip_frames"]
    truncate(sh / "part-00000.parquet", 0.5)
    with pytest.raises(ShardsError, match=r"part-00000\.parquet: not a readable Parquet file"):
        ShardDataset(sh, decode=False, verify=False)


def test_no_verify_is_verify_shards_false_for_every_stage_that_reads_shards(tmp_path, shards_src, monkeypatch):
    """``--no-verify`` = ``--set verify_shards=false`` on train, encode-latents, distill ode-pairs|dmd and run; the
    stage runner opens the readers of the stage with it."""
    from curation.reader import ShardDataset
    from playmill.cli import build_parser, load
    from playmill.stages import run_stage

    monkeypatch.chdir(tmp_path)  # no pipeline.yaml here: the built-in defaults
    sh = copy(shards_src, tmp_path / "shards")
    m = json.loads((sh / "manifest.json").read_text())
    m["shards"][0]["sha256"] = "0" * 64
    (sh / "manifest.json").write_text(json.dumps(m))
    parser = build_parser()
    for argv in (["train"], ["encode-latents", str(sh), "--vae", str(sh / "manifest.json")], ["distill", "ode-pairs"],
                 ["distill", "dmd"], ["run"]):
        assert load(parser.parse_args(argv)).verify_shards is True
        cfg = load(parser.parse_args(argv + ["--no-verify"]))
        assert cfg.verify_shards is False, argv
    with pytest.raises(ShardsError, match="sha256"):
        run_stage(load(parser.parse_args(["train"])), "train", run=lambda c, progress: ShardDataset(sh),
                  reraise=(ShardsError,))
    rep = run_stage(cfg, "train", run=lambda c, progress: len(ShardDataset(sh)),
                    describe=lambda c, r: ("done", str(r), sh, []))
    assert rep.status == "done" and rep.wrote == str(m["shards"][0]["rows"])
    with pytest.raises(ShardsError, match="sha256"):  # outside the stage the default is back
        ShardDataset(sh)


def test_export_refuses_broken_shards_before_writing(tmp_path, shards_src, capsys, caplog):
    """Unusable shards are data (exit 1, the file named); a shards folder that does not exist is a usage error
    (exit 2). Nothing is written either way."""
    sh = copy(shards_src, tmp_path / "in" / "shards")
    (sh / "manifest.json").write_text("[]")
    out = tmp_path / "out" / "lerobot"
    check(Spec(["export", "lerobot", sh, out], 1, [r"manifest\.json: must be a JSON object"], inputs=[sh]),
          tmp_path, capsys, caplog)
    check(Spec(["export", "lerobot", tmp_path / "in" / "nowhere", out], 2, [r"nowhere: no such shards folder",
                                                                            r"Nothing was run"], inputs=[sh]),
          tmp_path, capsys, caplog)
    assert not out.exists()
