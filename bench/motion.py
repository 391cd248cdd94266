"""Camera motion from pixels (capture.motion) against the sandbox's exact float64 poses, with peers in the same run.

    python bench/motion.py [--quick] [--cache DIR]

Episodes: sandbox sequences (city, indoor, park; several seeds; horizontal FOV 60/90/110) driven by the navmesh
controller (tours with turns and look-arounds) and the wander explorer (walks, sprints, strafes, looks up and down,
walks into walls), recorded at 320x176 with exact poses; each is scored raw
and after an H.264 round trip (x264 crf 23, yuv420p). Per frame against the poses: yaw and pitch change (median
absolute error in deg/frame, Pearson r; on all frames and on the frames the estimator is confident on), the share
of confident frames, and the translation direction (forward/back and strafe sign on frames that move more than
3 cm along the dominant axis), read after removing the labelled rotation (the curation check's case) and after
removing the visual one (video alone).

Peers on the same frames and the same tracks: a homography fit (``cv2.findHomography`` RANSAC, R = K^-1 H K),
``cv2.findEssentialMat`` + ``cv2.recoverPose`` (rotation and translation direction), and dense Farneback flow at
the full 320x176 with the same rotation fit on an 8 px grid. Speed: frames per CPU-second on one thread
(``cv2.setNumThreads(1)``, process time, so other jobs on a shared machine do not count), decode excluded, the
320x176 -> 160x88 resize and grey conversion included. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sandbox_clips import gt_motion, h264_roundtrip, record  # noqa: E402

from capture.motion import MotionConfig, analyse_frames, fit_rotation, focal_px, to_gray, track_pair, translation_evidence  # noqa: E402


def rot_angles(m: np.ndarray) -> tuple[float, float]:
    """(pitch_deg, yaw_deg) of a rotation whose columns are the new camera axes in the old camera's coordinates."""
    m = m / np.cbrt(np.linalg.det(m))
    return float(np.degrees(-np.arcsin(np.clip(m[1, 2], -1, 1)))), float(np.degrees(np.arctan2(m[0, 2], m[2, 2])))


def peers(frames: np.ndarray, hfov: float) -> dict[str, dict[str, np.ndarray]]:
    """Per-frame (pitch, yaw, fwd, lat) of the peers, and their CPU seconds (tracking shared with ours is counted
    in each peer's time)."""
    import cv2

    cfg = MotionConfig()
    grays = [to_gray(f, cfg.width) for f in frames]
    h, w = grays[0].shape
    f = focal_px(w, hfov)
    k = np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1.0]])
    kinv = np.linalg.inv(k)
    n = len(frames)
    out = {name: {"pitch": np.full(n, np.nan), "yaw": np.full(n, np.nan), "fwd": np.full(n, np.nan),
                  "lat": np.full(n, np.nan), "cpu_s": 0.0} for name in ("homography", "essential", "farneback_full")}
    for i in range(1, n):
        t0 = time.process_time()
        x, y, du, dv = track_pair(grays[i - 1], grays[i], f, cfg)
        t_track = time.process_time() - t0
        if len(x) >= 8:
            p0 = np.stack([x * f + (w - 1) / 2, y * f + (h - 1) / 2], 1).astype(np.float32)
            p1 = p0 + np.stack([du * f, dv * f], 1).astype(np.float32)
            t0 = time.process_time()
            hm, _ = cv2.findHomography(p0, p1, cv2.RANSAC, 1.0)
            if hm is not None:
                r = (kinv @ hm @ k).T
                out["homography"]["pitch"][i], out["homography"]["yaw"][i] = rot_angles(r)
            out["homography"]["cpu_s"] += time.process_time() - t0 + t_track
            t0 = time.process_time()
            e, mask = cv2.findEssentialMat(p0, p1, k, cv2.RANSAC, 0.999, 1.0)
            if e is not None and e.shape == (3, 3):
                _, r, t, _ = cv2.recoverPose(e, p0, p1, k, mask=mask)
                out["essential"]["pitch"][i], out["essential"]["yaw"][i] = rot_angles(r.T)
                c = -r.T @ t.reshape(3)  # second camera centre in the first camera's frame (x right, z forward)
                out["essential"]["fwd"][i], out["essential"]["lat"][i] = c[2], c[0]
            out["essential"]["cpu_s"] += time.process_time() - t0 + t_track
        t0 = time.process_time()
        a = cv2.cvtColor(frames[i - 1], cv2.COLOR_RGB2GRAY)
        b = cv2.cvtColor(frames[i], cv2.COLOR_RGB2GRAY)
        flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)
        hh, ww = a.shape
        ff = focal_px(ww, hfov)
        ys, xs = np.mgrid[4:hh:8, 4:ww:8]
        fl = flow[ys, xs]
        gx, gy = (xs.ravel() - (ww - 1) / 2) / ff, (ys.ravel() - (hh - 1) / 2) / ff
        fu, fv = fl[..., 0].ravel() / ff, fl[..., 1].ravel() / ff
        fit = fit_rotation(gx, gy, fu, fv, ff, MotionConfig(min_tracks=8, max_residual_px=1e9, min_spread_px=0))
        out["farneback_full"]["pitch"][i], out["farneback_full"]["yaw"][i] = fit.pitch_deg, fit.yaw_deg
        out["farneback_full"]["fwd"][i], out["farneback_full"]["lat"][i] = translation_evidence(
            gx, gy, fu, fv, ff, fit.pitch_deg, fit.yaw_deg)
        out["farneback_full"]["cpu_s"] += time.process_time() - t0
    return out


def score(est_p, est_y, gt_p, gt_y, sel) -> dict[str, float]:
    s = sel & np.isfinite(est_y) & np.isfinite(gt_y)
    if s.sum() < 3:
        return {"n": int(s.sum())}
    e = np.abs(est_y[s] - gt_y[s])
    ep = np.abs(est_p[s] - gt_p[s])
    return {"n": int(s.sum()), "yaw_med_err": float(np.median(e)), "yaw_p95_err": float(np.percentile(e, 95)),
            "yaw_r": float(np.corrcoef(est_y[s], gt_y[s])[0, 1]), "pitch_med_err": float(np.median(ep)),
            "pitch_r": float(np.corrcoef(est_p[s], gt_p[s])[0, 1]) if np.std(gt_p[s]) > 0 else float("nan")}


def direction_acc(fwd, lat, t) -> tuple[float, int, float, int]:
    mf = (np.abs(t[:, 0]) > 3) & (np.abs(t[:, 0]) >= np.abs(t[:, 1])) & np.isfinite(fwd)
    ms = (np.abs(t[:, 1]) > 3) & (np.abs(t[:, 1]) > np.abs(t[:, 0])) & np.isfinite(lat)
    af = float(np.mean(np.sign(fwd[mf]) == np.sign(t[mf, 0]))) if mf.any() else float("nan")
    as_ = float(np.mean(np.sign(lat[ms]) == np.sign(t[ms, 1]))) if ms.any() else float("nan")
    return af, int(mf.sum()), as_, int(ms.sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer, shorter episodes (under a minute)")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "playmill-bench-sandbox")
    args = ap.parse_args()
    import cv2

    cv2.setNumThreads(1)
    t_start = time.time()
    if args.quick:
        runs = [("city", 201, 90.0, "navmesh"), ("indoor", 201, 90.0, "wander"), ("park", 201, 90.0, "navmesh"),
                ("city", 202, 60.0, "wander"), ("park", 202, 110.0, "wander")]
        frames_n, h264_every = 150, 2
    else:
        runs = [(sc, sd, fov, ctl) for sc in ("city", "indoor", "park") for sd in (201, 202, 203)
                for fov in (60.0, 90.0, 110.0) for ctl in ("navmesh", "wander")]
        frames_n, h264_every = 300, 1
    pooled: dict[str, dict[str, list]] = {}
    cpu = {"ours": 0.0, "homography": 0.0, "essential": 0.0, "farneback_full": 0.0}
    nframes = 0
    rows = []

    def add(key, **arrays):
        d = pooled.setdefault(key, {})
        for k, v in arrays.items():
            d.setdefault(k, []).append(np.asarray(v))

    for j, (scene, seed, fov, ctl) in enumerate(runs):
        rec = record(scene, seed, frames_n, fov_deg=fov, controller=ctl, cache_dir=args.cache)
        gp, gy, t = gt_motion(rec)
        variants = [("raw", rec.frames)]
        if j % h264_every == 0:
            variants.append(("h264", h264_roundtrip(rec.frames)))
        for codec, frames in variants:
            t0 = time.process_time()
            m = analyse_frames(frames, fov)
            dt = time.process_time() - t0
            if codec == "raw":
                cpu["ours"] += dt
                nframes += len(frames)
            fl, ll = m.translation_evidence(gp, gy)  # labelled (exact) rotation removed
            fv, lv = m.translation_evidence()  # visual rotation removed: video alone
            add(f"ours/{codec}", est_p=m.pitch_deg, est_y=m.yaw_deg, gt_p=gp, gt_y=gy, conf=m.confident, t=t,
                fwd_l=fl, lat_l=ll, fwd_v=fv, lat_v=lv, scene=np.full(len(gy), scene))
            if codec == "raw":
                pr = peers(frames, fov)
                for name, v in pr.items():
                    cpu[name] += v["cpu_s"]
                    add(f"{name}/raw", est_p=v["pitch"], est_y=v["yaw"], gt_p=gp, gt_y=gy,
                        conf=np.ones(len(gy), bool), t=t, fwd_v=v["fwd"], lat_v=v["lat"])
            sc_all = score(m.pitch_deg, m.yaw_deg, gp, gy, np.ones(len(gy), bool))
            sc_conf = score(m.pitch_deg, m.yaw_deg, gp, gy, m.confident)
            rows.append((scene, seed, fov, codec, float(m.confident[1:].mean()), sc_all.get("yaw_r"),
                         sc_conf.get("yaw_r"), sc_conf.get("yaw_med_err")))

    print(f"{len(runs)} sandbox episodes x {frames_n} frames (320x176, analysed at 160x88); "
          f"{time.time() - t_start:.0f} s wall")
    print(f"{'scene':7s} {'seed':>4s} {'fov':>4s} {'codec':5s} {'conf':>5s} {'yaw r':>6s} {'conf r':>6s} {'conf err':>8s}")
    for r in rows:
        print(f"{r[0]:7s} {r[1]:4d} {r[2]:4.0f} {r[3]:5s} {r[4]:5.2f} {r[5] or float('nan'):6.3f} "
              f"{r[6] or float('nan'):6.3f} {r[7] or float('nan'):8.3f}")
    summary = {}
    print(f"\n{'estimator':22s} {'frames':>6s} {'conf':>5s} {'yaw med':>7s} {'yaw r':>6s} {'pitch r':>7s} "
          f"{'fwd acc':>7s} {'strafe':>7s} {'fps/core':>8s}")
    for key, d in pooled.items():
        a = {k: np.concatenate(v) for k, v in d.items()}
        sel = np.isfinite(a["gt_y"])
        allsc = score(a["est_p"], a["est_y"], a["gt_p"], a["gt_y"], sel)
        csc = score(a["est_p"], a["est_y"], a["gt_p"], a["gt_y"], sel & a["conf"])
        conf = float(a["conf"][sel].mean())
        fa, nf, sa, ns = direction_acc(a["fwd_v"], a["lat_v"], a["t"])
        name = key.split("/")[0]
        fps = nframes / cpu[name] if cpu.get(name) else float("nan")
        entry = {"confident": conf, "all": allsc, "confident_frames": csc, "fwd_acc_video": fa, "strafe_acc_video": sa,
                 "moving_frames": [nf, ns], "fps_per_core": fps if key.endswith("raw") else None}
        if "fwd_l" in a:
            fl, nfl, sl, nsl = direction_acc(a["fwd_l"], a["lat_l"], a["t"])
            entry.update(fwd_acc_labelled=fl, strafe_acc_labelled=sl)
            per_scene = {}
            for sc in ("city", "indoor", "park"):
                ss = sel & (a["scene"] == sc)
                if not ss.any():
                    continue
                per_scene[sc] = {"confident": float(a["conf"][ss].mean()),
                                 **score(a["est_p"], a["est_y"], a["gt_p"], a["gt_y"], ss & a["conf"])}
            entry["per_scene"] = per_scene
        summary[key] = entry
        show = csc if key.startswith("ours") else allsc
        print(f"{key:22s} {int(sel.sum()):6d} {conf:5.2f} {show.get('yaw_med_err', float('nan')):7.3f} "
              f"{show.get('yaw_r', float('nan')):6.3f} {show.get('pitch_r', float('nan')):7.3f} {fa:7.3f} {sa:7.3f} "
              f"{entry['fps_per_core'] or float('nan'):8.0f}")
        if "fwd_l" in a:
            print(f"{'':22s} labelled rotation removed: forward/back {entry['fwd_acc_labelled']:.3f} of {nfl}, "
                  f"strafe {entry['strafe_acc_labelled']:.3f} of {nsl}; per scene (confident): " + ", ".join(
                      f"{sc} {v['confident']:.2f} conf, r {v.get('yaw_r', float('nan')):.3f}" for sc, v in per_scene.items()))
    ours = summary["ours/raw"]
    print("(ours: confident frames; peers: all frames. Targets: confident yaw r >= 0.95 with >= 50 % confident, "
          "median yaw error <= 0.2 deg/frame, forward/back and strafe >= 95 %, >= 500 frames/s per core)")
    h = summary.get("ours/h264", ours)
    print(json.dumps({
        "bench": "motion", "quick": args.quick, "episodes": len(runs), "frames": nframes,
        "confident": round(ours["confident"], 3), "yaw_r_confident": round(ours["confident_frames"]["yaw_r"], 4),
        "yaw_med_err_confident": round(ours["confident_frames"]["yaw_med_err"], 4),
        "yaw_r_all": round(ours["all"]["yaw_r"], 4), "pitch_r_confident": round(ours["confident_frames"]["pitch_r"], 4),
        "fwd_acc_labelled": round(ours["fwd_acc_labelled"], 4), "strafe_acc_labelled": round(ours["strafe_acc_labelled"], 4),
        "fwd_acc_video": round(ours["fwd_acc_video"], 4), "strafe_acc_video": round(ours["strafe_acc_video"], 4),
        "h264_yaw_r_confident": round(h["confident_frames"]["yaw_r"], 4), "h264_confident": round(h["confident"], 3),
        "fps_per_core": round(ours["fps_per_core"], 1),
        "peers": {k.split("/")[0]: {"yaw_r": round(v["all"].get("yaw_r", float("nan")), 4),
                                    "yaw_med_err": round(v["all"].get("yaw_med_err", float("nan")), 4),
                                    "fwd_acc": None if np.isnan(v["fwd_acc_video"]) else round(v["fwd_acc_video"], 4),
                                    "fps_per_core": round(v["fps_per_core"], 1)}
                  for k, v in summary.items() if not k.startswith("ours")},
        "seconds": round(time.time() - t_start, 1)}))


if __name__ == "__main__":
    main()
