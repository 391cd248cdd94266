"""Bounded property-based fuzzing of the readers that take untrusted input: the actions CSV (episodes and Unreal
exports), the GTA JSON-lines log, the shards manifest and the UnrealCV request parser and command dispatcher.

The property everywhere: any input gives a result or the reader's own error naming the file (never another
exception, never a hang); a result is only ever returned for input that passes the checks.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

#: Examples per reader: 150 in CI (bounded); PLAYMILL_FUZZ_EXAMPLES=5000 for a deeper run by hand.
FUZZ = settings(max_examples=int(os.environ.get("PLAYMILL_FUZZ_EXAMPLES", "150")), deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)


def _mutations(draw, data: bytes) -> bytes:
    """A few random edits of ``data``: overwrite, insert, delete, truncate."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["set", "insert", "delete", "truncate"]))
        i = draw(st.integers(0, max(0, len(out) - 1)))
        if kind == "set" and out:
            out[i] = draw(st.integers(0, 255))
        elif kind == "insert":
            out[i:i] = draw(st.sampled_from([b",", b"\n", b"nan", b"\xef\xbb\xbf", b'"', b"-1e309", b"\x00", b"\r"]))
        elif kind == "delete":
            del out[i:i + draw(st.integers(1, 20))]
        else:
            del out[i:]
    return bytes(out)


mutated = st.composite(lambda draw, data: _mutations(draw, data))


# ---------------------------------------------------------------------------------------------- actions.csv


@pytest.fixture(scope="module")
def episode_csv(episodes_src):
    ep = sorted(episodes_src.iterdir())[0]
    from capture.episode import EpisodeMeta

    meta = EpisodeMeta.from_dict(json.loads((ep / "meta.json").read_text()))
    return (ep / "actions.csv").read_bytes(), meta


@FUZZ
@given(data=st.data())
def test_fuzz_episode_actions_csv(episode_csv, data):
    from capture.validate import read_actions_csv

    raw, meta = episode_csv
    blob = data.draw(st.one_of(mutated(raw), st.binary(max_size=400)))
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "actions.csv"
        p.write_bytes(blob)
        table, problems = read_actions_csv(p, action_space=meta.action_space, source=meta.source,
                                           frame_count=meta.frame_count)
    assert (table is None) == bool(problems)
    assert all(str(pr).startswith(str(p)) for pr in problems)
    if table is not None:
        assert len(table) == meta.frame_count and table.notna().to_numpy()[:, :len(table.columns) - 2].any()


@FUZZ
@given(data=st.data())
def test_fuzz_unreal_export_csv(data):
    from capture.actions import ActionSpace
    from tests.hostile.conftest import ue_rows
    from unreal_bridge.ue_import import RecordingError, read_export_csv

    raw = ("\n".join(ue_rows()) + "\n").encode()
    blob = data.draw(st.one_of(mutated(raw), st.binary(max_size=300)))
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "take.csv"
        p.write_bytes(blob)
        try:
            t = read_export_csv(p, ActionSpace())
        except RecordingError as e:
            assert e.problems and all(pr.file == str(p) for pr in e.problems)
        else:
            assert len(t) >= 1 and (t.t_s[1:] > t.t_s[:-1]).all()


# ---------------------------------------------------------------------------------------------- GTA JSON lines


@FUZZ
@given(data=st.data())
def test_fuzz_gta_behaviour_log(gta_src, data):
    from gta_bridge.recording import RecordingError, read_recording
    from gta_bridge.scenario import ScenarioError

    lines = (gta_src / "behaviour.jsonl").read_bytes().split(b"\n")
    how = data.draw(st.sampled_from(["mutate-head", "mutate-line", "json-line", "drop", "bytes"]))
    if how == "mutate-head":
        lines[0] = data.draw(mutated(lines[0]))
    elif how == "mutate-line":
        i = data.draw(st.integers(1, len(lines) - 1))
        lines[i] = data.draw(mutated(lines[i]))
    elif how == "json-line":
        i = data.draw(st.integers(0, len(lines) - 1))
        lines[i] = json.dumps(data.draw(JSON)).encode()
    elif how == "drop":
        del lines[data.draw(st.integers(0, len(lines) - 1))]
    else:
        lines = [data.draw(st.binary(max_size=200))]
    with tempfile.TemporaryDirectory() as d:
        rec = Path(d) / "rec"
        rec.mkdir()
        (rec / "behaviour.jsonl").write_bytes(b"\n".join(lines))
        shutil.copy(gta_src / "ticks.csv", rec / "ticks.csv")
        try:
            r = read_recording(rec)
        except (RecordingError, ScenarioError) as e:
            assert "behaviour.jsonl" in str(e) or str(rec) in str(e)
        else:
            assert r.header.session_id and len(r.ticks) >= 0


# ---------------------------------------------------------------------------------------------- manifest


@FUZZ
@given(data=st.data())
def test_fuzz_shards_manifest(shards_src, data):
    from curation.reader import ShardIndex
    from curation.shards import ShardsError, read_manifest

    m = json.loads((shards_src / "manifest.json").read_text())
    how = data.draw(st.sampled_from(["field", "shard-field", "json", "bytes"]))
    if how == "field":
        m[data.draw(st.sampled_from(sorted(m)))] = data.draw(JSON)
        blob = json.dumps(m).encode()
    elif how == "shard-field":
        m["shards"][0][data.draw(st.sampled_from(["file", "rows", "bytes", "sha256", "extra"]))] = data.draw(JSON)
        blob = json.dumps(m).encode()
    elif how == "json":
        blob = json.dumps(data.draw(JSON)).encode()
    else:
        blob = data.draw(st.binary(max_size=300))
    with tempfile.TemporaryDirectory() as d:
        sh = Path(d) / "shards"
        shutil.copytree(shards_src, sh)
        (sh / "manifest.json").write_bytes(blob)
        for open_it in (read_manifest, lambda x: ShardIndex(x)):
            try:
                open_it(sh)
            except ShardsError as e:
                assert str(sh) in str(e)
        assert sorted(p.name for p in sh.parent.iterdir()) == ["shards"]


# ---------------------------------------------------------------------------------------------- UnrealCV


@FUZZ
@given(payload=st.binary(max_size=200))
def test_fuzz_unrealcv_request_parser(payload):
    from unreal_bridge.unrealcv_server import CommandError, RequestError, parse_request, parse_vbatch

    try:
        rid, text = parse_request(payload)
    except RequestError:
        assert not payload.split(b":", 1)[0].isdigit() or len(payload.split(b":", 1)[0]) > 10 or b":" not in payload
        return
    assert rid.isdigit() and payload.startswith(rid + b":") and text == text.strip()
    try:
        n = parse_vbatch(text)
    except CommandError as e:
        assert "vbatch takes a count" in str(e)
    else:
        assert n is None or 1 <= n <= 1000


@pytest.fixture(scope="module")
def session():
    from unreal_bridge.unrealcv_server import SandboxSession, ServerConfig

    s = SandboxSession(ServerConfig(port=0, scene="indoor", seed=2, width=16, height=16))
    yield s
    s.close()


_TOKENS = st.sampled_from(["vget", "vset", "/camera/0/location", "/camera/0/rotation", "/camera/0/lit",
                           "/camera/0/depth", "/camera/0/size", "/camera/0/fov", "/camera/1/lit", "/objects",
                           "/object/Box_0/location", "/object/../x/location", "/level/name", "/action/keyboard",
                           "/action/game/level", "/unrealcv/status", "/cameras", "png", "npy", "bmp", "W", "Q",
                           "indoor_2", "city_99999999999", "../x", "0", "-1", "0.04", "nan", "inf", "1e309", "12",
                           "16", "90", "abc", "\x00", "é"])


@FUZZ
@given(words=st.lists(st.one_of(_TOKENS, st.text(max_size=6)), max_size=6))
def test_fuzz_unrealcv_commands(session, words):
    from unreal_bridge.unrealcv_server import CommandError

    try:
        reply = session.execute(" ".join(words), lambda: "status")
    except CommandError as e:
        assert str(e)
    else:
        assert isinstance(reply, bytes)
    assert session.world.width <= 4096 and session.level_name.startswith("indoor_")
