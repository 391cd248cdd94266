"""A small deterministic curation input whose shards are pinned in ``fixtures/golden_shards.json``.

The fixture was first written by the code on main before the stage refactor (issue 18, commit fe3a92d: the
per-episode closure state machine of ``curation/process.py``), so ``test_golden_shards`` proves that the stage
classes write the same shards, byte for byte, on both engines. When issue 18 landed on issue 14's main
(a52f017), the fixture was rewritten by that main's own pre-refactor curation: issue 14's vectorised
``capture.rotations.rotator_to_quat`` moves a few quaternions of the ``dups`` input episode by one ulp (the
``pose`` column of one to three of its clips per config), and the stage classes reproduce the new digests byte
for byte too. The input exercises every stage: a 30 fps episode with a frozen stretch and duplicated frames
(dedup, resampling to 25 fps), a long standing-still span (velocity), non-finite poses (pose), a truncated video
and a folder that is no episode (rejected whole), an episode shorter than one clip, overlapping windows, JPEG
frames and motion-matched Sekai footage.

When issue 17 moved video I/O in-process (PyAV), the fixture was rewritten once more: clips are encoded by
PyAV's libx264 (another build than the ffmpeg binary's) and decoded frames are converted by PyAV's swscale, and a
truncated video's reason is worded anew; the stage classes on both engines reproduce the new digests.
Issue 16 then changed rejects.parquet only, on purpose: a ``frames`` column (the source frames each record
removed: a resampling record counts its skipped frames, not its whole segment) and the reason of the redundant
frames dropped while input is held ("the game froze"); every record and every clip stayed as it was.

``python -m tests.curation.golden --write`` rewrites the fixture with the current code (only after a change
that is meant to change the shards, or a new PyAV/libavcodec build: the fixture records the versions).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np

from tests.curation.helpers import make_fake_episodes, pan_frames, small_config, write_episode

FIXTURE = Path(__file__).with_name("fixtures") / "golden_shards.json"

CONFIGS = {
    "h264": dict(velocity={"max_still_s": 0.4}),
    "jpeg-overlap": dict(clip={"stride": 4}, output={"frame_codec": "jpeg", "shard_max_rows": 5,
                                                     "row_group_rows": 2}),
    "motion": dict(resample={"motion_sources": ["sekai"]}, velocity={"enabled": False}),
}


def build_inputs(root: Path) -> Path:
    """Write the golden episodes under ``root/episodes`` (deterministic bytes except meta.json's time)."""
    eps = root / "episodes"
    make_fake_episodes(eps, n=2, frames=60, scenes=("fake", "other"))
    # 30 fps: frozen stretch, a duplicated frame, a still span, key taps on dropped frames
    frames = pan_frames(120, seed=3, speed_px=1.0)
    frames[20:26] = [frames[19]] * 6
    frames[50] = frames[49].copy()
    n = len(frames)
    mouse = np.zeros((n, 2))
    mouse[1:, 1] = 0.25
    mouse[1::7, 0] = 0.5
    mouse[70:90] = 0.0
    speed = np.full(n, 150.0)
    speed[70:90] = 0.0  # 0.67 s standing still
    keys = [set() if i == 0 else ({"w", "space"} if i in (22, 50) else {"w"}) for i in range(n)]
    write_episode(eps, frames, scene="dups", fps=30.0, mouse=mouse, keys=keys, speed=speed)
    # non-finite poses in frames 21-22
    nan_ep = write_episode(eps, pan_frames(40, seed=4), scene="nanpose", index=1)
    csv = nan_ep / "actions.csv"
    lines = csv.read_text().splitlines()
    xcol = lines[0].split(",").index("x")
    for r in (21, 22):
        cells = lines[r + 1].split(",")
        cells[xcol] = "nan"
        lines[r + 1] = ",".join(cells)
    csv.write_text("\n".join(lines) + "\n")
    # shorter than one clip; a truncated video; a folder that is no episode
    write_episode(eps, pan_frames(6, seed=6), scene="short", index=2)
    trunc = write_episode(eps, pan_frames(30, seed=7), scene="trunc", index=3)
    v = trunc / "video.mp4"
    v.write_bytes(v.read_bytes()[: v.stat().st_size // 2])
    (eps / "zz-not-an-episode").mkdir()
    # motion-matched Sekai footage (a steady walk at 30 fps)
    from curation.importers import import_sekai
    from tests.curation.test_importers import write_sekai

    src = root / "sekai"
    src.mkdir()
    e = np.tile(np.eye(4), (90, 1, 1))
    e[:, 2, 3] = np.linspace(0, 1, 90)
    write_sekai(src, "walk_0_90", e)
    assert len(import_sekai(src, eps, {"check": "off"}).written) == 1
    return eps


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _cell(v, root: str):
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, str):
        return v.replace(root, "<root>")
    if isinstance(v, list):
        return [_cell(x, root) for x in v]
    return v


def content_digest(path: Path, root: Path) -> str:
    """sha256 of a Parquet file's rows (every column, in order), independent of the writer's version; the
    input folder ``root`` (it appears in reject reasons) is written as ``<root>``."""
    import pyarrow.parquet as pq

    t = pq.read_table(path)
    h = hashlib.sha256(str(t.schema.remove_metadata()).encode())
    for row in t.to_pylist():
        h.update(json.dumps({k: _cell(v, str(root)) for k, v in row.items()}, sort_keys=True, default=repr).encode())
    return h.hexdigest()


def shard_digests(out: Path, root: Path) -> dict:
    """``{"files": {part: sha256}, "content": {name: content sha256}}`` of a shards folder: the bytes of each
    part file and the rows of every Parquet file (rejects.parquet's reasons name the input folder, so its
    bytes depend on where the input lives)."""
    names = sorted(p.name for p in out.glob("*.parquet"))
    return {"files": {n: _sha((out / n).read_bytes()) for n in names if n.startswith("part-")},
            "content": {n: content_digest(out / n, root) for n in names}}


def versions() -> dict:
    import pyarrow

    import av

    # the libraries that decode and encode the clips (in-process, issue 17): PyAV and its libavcodec (x264 inside)
    return {"pyarrow": pyarrow.__version__,
            "libav": f"av {av.__version__}, libavcodec {'.'.join(map(str, av.library_versions['libavcodec']))}"}


def curate_all(eps: Path, root: Path, engine: str = "local", workers: int = 1) -> dict:
    """Curate the golden episodes with every config of :data:`CONFIGS`; their digests by config name."""
    from curation.runner import curate

    out = {}
    for name, overrides in CONFIGS.items():
        d = root / f"{engine}-{name}"
        curate(eps, d, small_config(**overrides), engine=engine, workers=workers, progress=False)
        out[name] = shard_digests(d, eps.parent)
    return out


def main(argv: list[str]) -> int:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        eps = build_inputs(root)
        digests = curate_all(eps, root)
        doc = {"made_by": "tests/curation/golden.py", "versions": versions(), "configs": digests}
        if "--write" in argv:
            FIXTURE.parent.mkdir(exist_ok=True)
            FIXTURE.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
            print(f"wrote {FIXTURE}")
        else:
            print(json.dumps(doc, indent=1, sort_keys=True))
        shutil.rmtree(root / "episodes", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
