"""The fixes the footage import check names: does the named mapping change restore the true conventions?

    python bench/import_fixes.py [--quick]

Episodes: sandbox recordings (park, city, indoor; 160x96, 20 fps) driven by the footage tests' controller
(``tests/curation/footage.py``: smooth turns and pitch swings with a hand's jitter, walking forward and back,
strafing both ways; here its key plan is shuffled per seed), written as a video plus a generic actions CSV
(degrees, look up +, turn right +, one row per frame). Each is checked (:func:`curation.generic.check_generic`, what
``playmill import generic --check`` runs) under its true mapping (a fault found there is a false alarm) and under
mappings with convention errors injected: yaw or pitch sign, both, pitch and yaw columns swapped (alone and with the
yaw sign), radians read as degrees, rows two frames off (alone and with the yaw sign), W/S or A/D swapped, a video
mirrored by the import. Per injected error:

* detected: the diagnosis is not ok;
* fixed: the mapping with the named change applied has the true conventions (the look columns, signs, units, row
  offset, mirror and key columns of the true mapping): the change is exact, not merely plausible.

Peer, in the same run on the same diagnoses: the change named from each fault's code alone (what the import
printed before the candidates were checked against the video: :func:`curation.generic.mapping_fixes` without a
scope). Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.curation.footage import FPS, FOV, H, W, LookAndWalk  # noqa: E402

TRUE = {"keys": {k: f"key_{k}" for k in ("w", "s", "a", "d")}, "d_pitch": "dpitch", "d_yaw": "dyaw", "fov_deg": FOV}
FAULTS: dict[str, dict] = {
    "yaw sign": {"yaw_positive": "left"},
    "pitch sign": {"pitch_positive": "down"},
    "both signs": {"yaw_positive": "left", "pitch_positive": "down"},
    "pitch/yaw swapped": {"d_pitch": "dyaw", "d_yaw": "dpitch"},
    "swapped + yaw sign": {"d_pitch": "dyaw", "d_yaw": "dpitch", "yaw_positive": "left"},
    "radians for degrees": {"mouse_units": "rad"},
    "rows 2 late": {"row_offset": -2},
    "rows 2 early + yaw sign": {"row_offset": 2, "yaw_positive": "left"},
    "W/S swapped": {"keys": {"w": "key_s", "s": "key_w", "a": "key_a", "d": "key_d"}},
    "A/D swapped": {"keys": {"w": "key_w", "s": "key_s", "a": "key_d", "d": "key_a"}},
    "mirrored video": {"mirror": True},
}
QUICK = ("yaw sign", "swapped + yaw sign", "rows 2 early + yaw sign", "A/D swapped", "mirrored video")
CONVENTIONS = ("d_pitch", "d_yaw", "yaw_positive", "pitch_positive", "mouse_units", "row_offset", "mirror", "keys")


class Shuffled(LookAndWalk):
    """The footage tests' controller with its key plan in a per-seed order."""

    def reset(self, seed: int, obs) -> None:
        super().reset(seed, obs)
        order = np.random.default_rng(seed).permutation(len(LookAndWalk.plan))
        self.plan = [LookAndWalk.plan[i] for i in order]


def write_source(scene: str, seed: int, frames: int, folder: Path) -> tuple[Path, Path]:
    """A sandbox recording as ``clip.mp4`` + ``clip.csv`` in the true conventions."""
    from capture.collect import plan_episodes, record_episode
    from capture.episode import read_episode
    from tests.curation.footage import key_sets
    from unreal_bridge import SandboxWorld

    (task,) = plan_episodes("sandbox", [scene], 1, frames, base_seed=seed)
    (folder / "rec").mkdir(parents=True)
    with SandboxWorld(scene, width=W, height=H, fps=FPS, fov_deg=FOV, npc_density=0.0, vehicle_density=0.0) as world:
        ep = read_episode(record_episode(world, Shuffled(), folder / "rec", task, encoder={"crf": 12}))
    import pandas as pd

    keys = key_sets(ep)
    df = pd.DataFrame({f"key_{k}": [int(k in s) for s in keys] for k in ("w", "s", "a", "d")})
    df["dpitch"], df["dyaw"] = ep.mouse()[:, 0], ep.mouse()[:, 1]
    df.to_csv(folder / "clip.csv", index=False)
    shutil.copyfile(ep.video_path, folder / "clip.mp4")
    return folder / "clip.mp4", folder / "clip.csv"


def applied(mapping: dict, fixes: list[str]) -> dict | None:
    """``mapping`` with the YAML lines of ``fixes`` applied (None when a line is advice, not a change)."""
    import yaml

    out = dict(mapping)
    for line in fixes:
        text = line.split("  #")[0].strip()
        if not text or text.startswith("#"):
            return None
        patch = yaml.safe_load("{" + text + "}")
        out.update({k: (dict(v) if isinstance(v, dict) else v) for k, v in patch.items()})
    return out


def restores(fixed: dict | None) -> bool:
    from curation.generic import GenericMapping

    if fixed is None:
        return False
    want, got = GenericMapping.from_dict(TRUE).to_dict(), GenericMapping.from_dict(fixed).to_dict()
    return all(want[k] == got[k] for k in CONVENTIONS)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 recordings of 160 frames, 5 errors (under a minute)")
    args = ap.parse_args()

    from curation.generic import GenericMapping, check_generic, mapping_fixes

    plan = [("park", 101), ("city", 102)]
    if not args.quick:
        plan += [("indoor", 103), ("park", 104), ("city", 105), ("indoor", 106)]
    frames = 160 if args.quick else 240
    faults = {k: v for k, v in FAULTS.items() if not args.quick or k in QUICK}
    rows: dict[str, dict[str, int]] = {k: {"n": 0, "detected": 0, "fixed": 0, "fixed_peer": 0} for k in faults}
    false_alarms, times = 0, []
    with tempfile.TemporaryDirectory() as tmp:
        for scene, seed in plan:
            video, csv = write_source(scene, seed, frames, Path(tmp) / f"{scene}-{seed}")
            clean = check_generic(video, csv, TRUE)
            false_alarms += int(not clean.ok)
            print(f"{scene}-{seed}: clean {'ok' if clean.ok else 'FALSE ALARM: ' + clean.diagnosis.summary()}",
                  flush=True)
            for name, wrong in faults.items():
                m = {**TRUE, **wrong}
                t0 = time.perf_counter()
                rep = check_generic(video, csv, m)
                times.append(time.perf_counter() - t0)
                r = rows[name]
                r["n"] += 1
                if rep.ok:
                    continue
                r["detected"] += 1
                r["fixed"] += restores(applied(m, rep.fixes))
                peer = mapping_fixes(rep.diagnosis, GenericMapping.from_dict(m), FPS)
                r["fixed_peer"] += restores(applied(m, peer))
    print(f"{'injected error':26s} {'detected':>9s} {'fixed (checked)':>16s} {'fixed (from names)':>19s}")
    for name, r in rows.items():
        print(f"{name:26s} {r['detected']:>5d}/{r['n']:<3d} {r['fixed']:>12d}/{r['n']:<3d} {r['fixed_peer']:>15d}/{r['n']:<3d}")
    tot = {k: sum(r[k] for r in rows.values()) for k in ("n", "detected", "fixed", "fixed_peer")}
    print(json.dumps({"episodes": len(plan), "frames": frames, "injected": tot["n"], "detected": tot["detected"],
                      "fixed_checked": tot["fixed"], "fixed_from_names": tot["fixed_peer"],
                      "fixed_ratio": round(tot["fixed"] / max(tot["fixed_peer"], 1), 3), "false_alarms": false_alarms,
                      "check_s_mean": round(float(np.mean(times)), 3), "check_s_max": round(float(np.max(times)), 3)}))


if __name__ == "__main__":
    main()
