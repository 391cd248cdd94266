"""The shards of a small deterministic input are pinned (fixtures/golden_shards.json, first written by the
code before the stage refactor) and both engines write them, byte for byte."""

import json
from pathlib import Path

import pytest

from tests.curation.golden import FIXTURE, build_inputs, curate_all, versions


@pytest.fixture(scope="module")
def golden_inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("golden")
    return build_inputs(root)


def _check(got: dict, name: str) -> None:
    doc = json.loads(FIXTURE.read_text())
    want = doc["configs"]
    assert versions()["libav"] == doc["versions"]["libav"], (
        f"the x264 build changed ({doc['versions']['libav']} -> {versions()['libav']}): clip bytes differ by "
        "design; rewrite the fixture with `python -m tests.curation.golden --write` after checking the shards")
    for cfg in want:
        assert got[cfg]["content"] == want[cfg]["content"], f"{name}: rows of config {cfg!r} differ from the fixture"
        if versions()["pyarrow"] == doc["versions"]["pyarrow"]:  # a Parquet file records its writer's version
            assert got[cfg]["files"] == want[cfg]["files"], f"{name}: bytes of config {cfg!r} differ from the fixture"


def test_local_engine_writes_the_golden_shards(golden_inputs):
    _check(curate_all(golden_inputs, golden_inputs.parent, engine="local", workers=2), "local")


def test_ray_engine_writes_the_golden_shards_byte_for_byte_as_local(golden_inputs, ray_local):
    local = curate_all(golden_inputs, golden_inputs.parent, engine="local", workers=1)
    viaray = curate_all(golden_inputs, golden_inputs.parent, engine="ray", workers=2)
    _check(viaray, "ray")
    root = golden_inputs.parent
    for cfg in local:  # every Parquet file, rejects.parquet included, is the same file
        names = sorted(p.name for p in (root / f"local-{cfg}").glob("*.parquet"))
        assert names == sorted(p.name for p in (root / f"ray-{cfg}").glob("*.parquet"))
        for n in names:
            assert (root / f"local-{cfg}" / n).read_bytes() == (root / f"ray-{cfg}" / n).read_bytes(), (cfg, n)
