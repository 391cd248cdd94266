"""Camera pose drift: playmill's float64 CameraRig vs float32 accumulation, over 1 h and 10 h at 30 fps.

Inputs (the same for every method; see ``make_inputs``): ``mouse``, seeded mouse counts x 0.07 deg/count while
walking along the heading, and ``steady``, a constant turn with a straight walk (systematic float32 rounding);
150 cm/s starting 2 km from the origin; dt = 1/30 s.

Methods:
  float32 Euler       yaw/pitch summed in float32 (yaw wrapped to (-180, 180]), position summed in float32
  float32 quaternion  q = q_yaw(dyaw) * q * q_pitch(dpitch) in float32 each frame (renormalised), which is
                      exact in exact arithmetic; position summed in float32
  float64 naive       float64 sums (no compensation)
  float64 CameraRig   playmill: float64 yaw/pitch scalars with compensated sums, quaternion rebuilt each frame

Reference: exact. Each float64 delta is an exact dyadic rational; prefix sums are computed with Python integers
(yaw wrapped modulo 360 exactly) and rounded once to float64. Errors: angle of the rotation between each
method's quaternion and the reference quaternion, and the 3D position error, at 200 checkpoints (max) and at
the end. Improvement = float32 error / CameraRig error; where the rig's error is below the reference's own
rounding (half an ulp), that floor is used, so the factors are lower bounds.

    python bench/camera.py --quick     # 108,000 frames (1 h)
    python bench/camera.py             # 108,000 and 1,080,000 frames (10 h)

The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unreal_bridge.camera import CameraRig, quat_angle_deg, rotator_to_quat  # noqa: E402

FPS = 30.0
SENS_DEG = 0.07
SPEED_CM_S = 150.0
START_CM = (200_000.0, 0.0, 0.0)  # 2 km from the origin


def make_inputs(frames: int, seed: int, stream: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame float64 inputs ``(d_yaw_deg, d_pitch_deg, heading_deg)``.

    ``mouse``: integer counts x 0.07 deg (yaw: a random walk around 8 counts/frame; pitch: a sinusoid within
    +-63 deg); the agent walks along its current heading. ``steady``: a constant turn of 0.37 deg/frame and a
    +-0.1 deg/frame triangle wave in pitch, while walking straight at a heading of 30 deg (constant
    velocity: the case where float32 rounding is systematic and drifts linearly)."""
    n = np.arange(frames + 1)
    if stream == "mouse":
        rng = np.random.default_rng(seed)
        yaw_counts = np.rint(rng.normal(8.0, 6.0, frames)).astype(np.int64)
        pitch_pos = np.rint(900.0 * np.sin(2 * np.pi * n / 2000.0)).astype(np.int64)  # stays within +-63 deg
        d_yaw, d_pitch = yaw_counts * SENS_DEG, np.diff(pitch_pos) * SENS_DEG
        heading = np.cumsum(d_yaw)
    elif stream == "steady":
        d_yaw = np.full(frames, 0.37)
        d_pitch = np.where((n[:-1] // 600) % 2 == 0, 0.1, -0.1)
        heading = np.full(frames, 30.0)
    else:
        raise ValueError(f"unknown stream {stream!r}")
    return d_yaw, d_pitch, heading


def exact_prefix(values: np.ndarray, at: np.ndarray, start: float = 0.0, wrap_deg: bool = False) -> np.ndarray:
    """Correctly rounded float64 of ``start + sum(values[:k])`` for each ``k`` in ``at`` (exact arithmetic:
    every float64 is ``m * 2**e`` with integer ``m``; all are scaled to the smallest exponent and summed as
    Python integers). With ``wrap_deg`` the exact sum is wrapped into [-180, 180) first."""
    vals = np.r_[start, values].astype(np.float64)
    mant, expo = np.frexp(vals)
    m = np.ldexp(mant, 53).astype(np.int64)  # exact: |mant| < 1 has 53 significant bits
    e = expo.astype(np.int64) - 53
    nz = m != 0
    emin = int(e[nz].min()) if np.any(nz) else 0
    shift = np.where(nz, e - emin, 0).tolist()
    ints = np.array([mi << s if mi >= 0 else -((-mi) << s) for mi, s in zip(m.tolist(), shift)], dtype=object)
    sums = np.cumsum(ints)
    scale = Fraction(2) ** emin
    out = []
    for k in at.tolist():
        x = Fraction(int(sums[k])) * scale
        if wrap_deg:
            x = (x + 180) % 360 - 180
        out.append(float(x))
    return np.asarray(out)


def run(frames: int, seed: int, stream: str) -> dict:
    d_yaw, d_pitch, heading = make_inputs(frames, seed, stream)
    dt = 1.0 / FPS
    checkpoints = np.unique(np.r_[np.linspace(0, frames, 201).astype(np.int64)[1:], frames])
    t0 = time.perf_counter()
    yaw_ref = exact_prefix(d_yaw, checkpoints, wrap_deg=True)
    pitch_ref = exact_prefix(d_pitch, checkpoints)
    # world velocity (an input, float64): walking at 150 cm/s along ``heading``
    vx = SPEED_CM_S * np.cos(np.radians(heading))
    vy = SPEED_CM_S * np.sin(np.radians(heading))
    step_x, step_y = vx * dt, vy * dt  # the float64 per-frame displacements every float64 method adds
    pos_ref = np.stack(
        [exact_prefix(step_x, checkpoints, START_CM[0]), exact_prefix(step_y, checkpoints, START_CM[1]), np.zeros(len(checkpoints))],
        axis=1,
    )
    q_ref = [rotator_to_quat(p, y, 0.0) for p, y in zip(pitch_ref, yaw_ref)]
    ref_s = time.perf_counter() - t0
    # half an ulp of the largest reference magnitudes: the resolution of the reference itself
    rot_floor = 0.5 * float(np.spacing(180.0))
    pos_floor = 0.5 * float(np.spacing(np.max(np.abs(pos_ref))))
    cp_set = {int(k): i for i, k in enumerate(checkpoints)}
    results = {}

    def record(name, k, q, pos, store):
        i = cp_set[k]
        store.setdefault("rot", []).append(quat_angle_deg(q_ref[i], np.asarray(q, dtype=np.float64)))
        store.setdefault("pos", []).append(float(np.linalg.norm(np.asarray(pos, dtype=np.float64) - pos_ref[i])))

    f32 = np.float32
    dy32, dp32 = d_yaw.astype(np.float32), d_pitch.astype(np.float32)
    # float32 position: sequential float32 sums of float32(v) * float32(dt) (np.cumsum accumulates in order)
    dt32 = f32(dt)
    px32 = np.cumsum(np.r_[f32(START_CM[0]), vx.astype(np.float32) * dt32], dtype=np.float32)
    py32 = np.cumsum(np.r_[f32(START_CM[1]), vy.astype(np.float32) * dt32], dtype=np.float32)

    # float32 Euler
    t = time.perf_counter()
    store: dict = {}
    yaw, pitch = f32(0.0), f32(0.0)
    f180, f360 = f32(180.0), f32(360.0)
    dyl, dpl = list(dy32), list(dp32)
    for k in range(1, frames + 1):
        yaw = yaw + dyl[k - 1]
        if yaw > f180:
            yaw = yaw - f360
        elif yaw <= -f180:
            yaw = yaw + f360
        pitch = pitch + dpl[k - 1]
        if k in cp_set:
            record("f32e", k, rotator_to_quat(float(pitch), float(yaw), 0.0), (px32[k], py32[k], 0.0), store)
    results["float32 Euler"] = dict(store, seconds=time.perf_counter() - t)

    # float32 quaternion composition: q = q_yaw(dy) * q * q_pitch(dp)
    t = time.perf_counter()
    store = {}
    hy, hp = np.radians(d_yaw) * 0.5, np.radians(d_pitch) * 0.5
    cy, sy = list(np.cos(hy).astype(np.float32)), list(np.sin(hy).astype(np.float32))
    cp, sp = list(np.cos(hp).astype(np.float32)), list((-np.sin(hp)).astype(np.float32))
    w, x, y, z = f32(1.0), f32(0.0), f32(0.0), f32(0.0)
    one = f32(1.0)
    for k in range(1, frames + 1):
        a, b = cy[k - 1], sy[k - 1]
        w, x, y, z = a * w - b * z, a * x - b * y, a * y + b * x, a * z + b * w  # (a,0,0,b) * q
        c, s = cp[k - 1], sp[k - 1]
        w, x, y, z = w * c - y * s, x * c - z * s, w * s + y * c, x * s + z * c  # q * (c,0,s,0)
        inv = one / np.sqrt(w * w + x * x + y * y + z * z)
        w, x, y, z = w * inv, x * inv, y * inv, z * inv
        if k in cp_set:
            record("f32q", k, (w, x, y, z), (px32[k], py32[k], 0.0), store)
    results["float32 quaternion"] = dict(store, seconds=time.perf_counter() - t)

    # float64 naive sums
    t = time.perf_counter()
    store = {}
    yaw, pitch = 0.0, 0.0
    px, py = START_CM[0], START_CM[1]
    dyl, dpl, sxl, syl = d_yaw.tolist(), d_pitch.tolist(), step_x.tolist(), step_y.tolist()
    for k in range(1, frames + 1):
        yaw += dyl[k - 1]
        if yaw > 180.0:
            yaw -= 360.0
        elif yaw <= -180.0:
            yaw += 360.0
        pitch += dpl[k - 1]
        px += sxl[k - 1]
        py += syl[k - 1]
        if k in cp_set:
            record("f64", k, rotator_to_quat(pitch, yaw, 0.0), (px, py, 0.0), store)
    results["float64 naive"] = dict(store, seconds=time.perf_counter() - t)

    # playmill CameraRig
    t = time.perf_counter()
    store = {}
    rig = CameraRig(np.array(START_CM), pitch_limit_deg=89.9)
    vel = np.stack([vx, vy, np.zeros(frames)], axis=1).tolist()
    for k in range(1, frames + 1):
        rig.look(dpl[k - 1], dyl[k - 1])
        rig.move(vel[k - 1], dt)
        if k in cp_set:
            record("rig", k, rig.quat, rig.pos_cm, store)
    results["float64 CameraRig"] = dict(store, seconds=time.perf_counter() - t)

    summary = {"stream": stream, "frames": frames, "hours": frames / FPS / 3600, "reference_s": ref_s, "rot_floor_deg": rot_floor,
               "pos_floor_cm": pos_floor, "methods": {}}
    for name, st in results.items():
        summary["methods"][name] = {
            "rot_err_max_deg": float(np.max(st["rot"])),
            "rot_err_end_deg": float(st["rot"][-1]),
            "pos_err_max_cm": float(np.max(st["pos"])),
            "pos_err_end_cm": float(st["pos"][-1]),
            "seconds": st["seconds"],
        }
    rig_m = summary["methods"]["float64 CameraRig"]
    rig_rot = max(rig_m["rot_err_max_deg"], rot_floor)
    rig_pos = max(rig_m["pos_err_max_cm"], pos_floor)
    e, qm = summary["methods"]["float32 Euler"], summary["methods"]["float32 quaternion"]
    summary["improvement_rot_vs_f32_euler"] = e["rot_err_max_deg"] / rig_rot
    summary["improvement_rot_vs_f32_quat"] = qm["rot_err_max_deg"] / rig_rot
    summary["improvement_pos_vs_f32"] = e["pos_err_max_cm"] / rig_pos
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="108,000 frames only")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t0 = time.perf_counter()
    sizes = [108_000] if args.quick else [108_000, 1_080_000]
    runs = [run(n, args.seed, stream) for n in sizes for stream in ("mouse", "steady")]
    print(f"camera drift bench ({'quick' if args.quick else 'full'}): errors vs an exact reference, max over 200 checkpoints")
    head = f"{'stream':<7} {'frames':>9} {'hours':>5}  {'method':<20} {'rot err max deg':>16} {'rot err end deg':>16} {'pos err max cm':>15} {'pos err end cm':>15} {'time s':>7}"
    print(head)
    print("-" * len(head))
    for r in runs:
        for name, m in r["methods"].items():
            print(f"{r['stream']:<7} {r['frames']:>9} {r['hours']:>5.1f}  {name:<20} {m['rot_err_max_deg']:>16.3e} {m['rot_err_end_deg']:>16.3e} "
                  f"{m['pos_err_max_cm']:>15.3e} {m['pos_err_end_cm']:>15.3e} {m['seconds']:>7.2f}")
        print(f"{'':>25}improvement of the rig (lower bounds): rotation x{r['improvement_rot_vs_f32_euler']:.3g} vs float32 Euler, "
              f"x{r['improvement_rot_vs_f32_quat']:.3g} vs float32 quaternion; position x{r['improvement_pos_vs_f32']:.3g} vs float32")
    print("float32 quaternion position = float32 Euler position (both sum the same float32 displacements).")
    out = {
        "bench": "camera",
        "quick": args.quick,
        "frames": sizes,
        "improvement_rot_vs_f32_euler": min(r["improvement_rot_vs_f32_euler"] for r in runs),
        "improvement_rot_vs_f32_quat": min(r["improvement_rot_vs_f32_quat"] for r in runs),
        "improvement_pos_vs_f32": min(r["improvement_pos_vs_f32"] for r in runs),
        "rig_rot_err_max_deg": max(r["methods"]["float64 CameraRig"]["rot_err_max_deg"] for r in runs),
        "rig_pos_err_max_cm": max(r["methods"]["float64 CameraRig"]["pos_err_max_cm"] for r in runs),
        "f32_euler_rot_err_max_deg": {f"{r['stream']}/{r['frames']}": r["methods"]["float32 Euler"]["rot_err_max_deg"] for r in runs},
        "f32_quat_rot_err_max_deg": {f"{r['stream']}/{r['frames']}": r["methods"]["float32 quaternion"]["rot_err_max_deg"] for r in runs},
        "f32_pos_err_max_cm": {f"{r['stream']}/{r['frames']}": r["methods"]["float32 Euler"]["pos_err_max_cm"] for r in runs},
        "runs": runs,
        "wall_s": time.perf_counter() - t0,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
