"""The eval stage and ``playmill eval``: the trained models on held-out test episodes -> reports/eval.json + eval.html
(the stage, :func:`playmill.stages.run_eval_stage`, records eval.json).

Wiring only: which episodes (:func:`test_episodes`, the ``test`` split of ``curate.split``), which models
(:class:`BaseGenerator`, :class:`StudentGenerator`: the run's base model and student, or Matrix-Game 2.0's
released checkpoints), the sandbox replay that gives ground truth for action scripts (:class:`SandboxReplay`);
the measuring is :func:`model.evaluate.evaluate_episode`, the page :func:`model.eval_report.write_eval_html`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from playmill.config import PipelineConfig

log = logging.getLogger(__name__)


def test_episodes(cfg: PipelineConfig) -> list[Path]:
    """The episodes of ``<workdir>/episodes`` in the ``test`` split (``curate.split``), sorted by id (none when the
    split is off)."""
    import json

    from capture.episode import list_episodes
    from curation.split import assign_split

    if not cfg.curate.split.enabled:
        return []
    out = []
    for p in list_episodes(cfg.episodes_dir):
        try:
            meta = json.loads((p / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if assign_split(cfg.curate.split, p.name, str(meta.get("scene", "")), meta.get("seed")) == "test":
            out.append(p)
    return out


@dataclass
class BaseGenerator:
    """The base model as a :class:`model.evaluate.Generator` (``steps`` Euler steps, fixed ``seed``)."""

    bundle: Any
    steps: int = 30
    seed: int = 0

    @property
    def frames(self) -> int:
        return int(self.bundle.spec.num_frames)

    @property
    def height(self) -> int:
        return int(self.bundle.spec.height)

    @property
    def width(self) -> int:
        return int(self.bundle.spec.width)

    def __call__(self, image: np.ndarray, keyboard: np.ndarray, mouse: np.ndarray) -> np.ndarray:
        from model.sample import generate_base

        return generate_base(self.bundle, image, (keyboard, mouse), num_frames=len(keyboard), steps=self.steps,
                             seed=self.seed).frames


@dataclass
class StudentGenerator:
    """The causal student (a loaded :class:`model.stream.Student`) streaming ``frames`` frames."""

    student: Any
    frames: int
    seed: int = 0

    @property
    def height(self) -> int:
        return int(self.student.bundle.spec.height)

    @property
    def width(self) -> int:
        return int(self.student.bundle.spec.width)

    def __call__(self, image: np.ndarray, keyboard: np.ndarray, mouse: np.ndarray) -> np.ndarray:
        from model.stream import generate_student

        return generate_student(self.student, image, (keyboard, mouse), None, num_frames=len(keyboard), seed=self.seed,
                                keep_frames=True).frames


def load_generators(cfg: PipelineConfig, *, base: Path | None = None, student: Path | None = None,
                    device: str | None = None, **mg2: Any) -> dict[str, Any]:
    """The models to evaluate: ``eval.models`` (default: every model trained under ``<workdir>/models``), or the
    ``base`` / ``student`` checkpoints given (a student may be a Matrix-Game 2.0 distilled checkpoint with
    ``mg2`` = vae, image_encoder, mode, mouse_scale, as for ``playmill generate``)."""
    import torch

    from model.bundle import latest_checkpoint, load_bundle
    from model.stream import load_student

    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    ev = cfg.eval
    paths: dict[str, Path] = {}
    if base is not None or student is not None:
        paths = {k: v for k, v in (("base", base), ("student", student)) if v is not None}
    else:
        for name in ev.models or ("base", "student"):
            d = cfg.models_dir / name
            if latest_checkpoint(d):
                paths[name] = d
            elif ev.models:
                raise FileNotFoundError(f"eval.models: no trained {name} model in {d}; run the train (and distill) "
                                        "stage first")
    if not paths:
        raise FileNotFoundError(f"eval: no trained model in {cfg.models_dir} (base/ or student/); run the train stage "
                                "(and distill for the student) first")
    out: dict[str, Any] = {}
    if "base" in paths:
        out["base"] = BaseGenerator(load_bundle(paths["base"], dev), ev.steps, ev.seed)
    if "student" in paths:
        st = load_student(paths["student"], device=dev, **{k: v for k, v in mg2.items() if v is not None})
        frames = ev.student_frames or cfg.generate.student_frames
        out["student"] = StudentGenerator(st, frames, ev.seed)
    return out


class SandboxReplay:
    """``replay(keyboard, mouse) -> frames``: a sandbox episode's world (same scene, seed and parameters) replayed
    under other actions, frame 0 first (the sandbox is deterministic: the recorded actions give the recording).
    One world is built on the first call and reset for each replay; :meth:`close` releases it."""

    def __init__(self, ep, keys: tuple[str, ...]) -> None:
        self.ep, self.keys, self.world = ep, tuple(keys), None

    def __call__(self, keyboard: np.ndarray, mouse: np.ndarray) -> np.ndarray:
        from capture.actions import FrameAction
        from unreal_bridge.sandbox import SandboxWorld

        ep = self.ep
        if self.world is None:
            c = ep.meta.config
            params = {k: c[k] for k in ("weather", "time_of_day", "npc_density", "vehicle_density", "fov_deg") if k in c}
            self.world = SandboxWorld(scene=ep.meta.scene, width=ep.meta.width, height=ep.meta.height, fps=ep.meta.fps,
                                      action_space=ep.action_space, **params)
        space = set(ep.action_space.keys)
        frames = [self.world.reset(ep.meta.seed).frame]
        for i in range(1, len(keyboard)):
            pressed = {k for k, v in zip(self.keys, keyboard[i]) if v > 0.5 and k in space}
            frames.append(self.world.step(FrameAction(pressed, float(mouse[i, 0]), float(mouse[i, 1]))).frame)
        return np.stack(frames)

    def close(self) -> None:
        if self.world is not None:
            self.world.close()
            self.world = None


def run_eval(cfg: PipelineConfig, *, generators: Mapping[str, Any] | None = None, progress: bool = True,
             **load_kw: Any) -> dict[str, Any]:
    """Every model on up to ``eval.episodes`` test episodes -> ``<workdir>/reports/eval.html``; returns the report
    (what eval.json holds). ``generators``: models to evaluate instead of :func:`load_generators` (``load_kw``)."""
    from tqdm.auto import tqdm

    from capture.episode import read_episode
    from model.eval_report import write_eval_html
    from model.evaluate import crop_hfov_deg, evaluate_episode, summarise

    t0 = time.perf_counter()
    eps = test_episodes(cfg)
    if not eps:
        sp = cfg.curate.split
        why = "curate.split is off" if not sp.enabled else f"curate.split by {sp.by}, test fraction {sp.test}, salt {sp.salt}"
        raise FileNotFoundError(f"eval: no test episode in {cfg.episodes_dir} ({why}); record more episodes or raise "
                                "curate.split.test")
    eps = eps[: cfg.eval.episodes]
    gens = dict(generators) if generators is not None else load_generators(cfg, **load_kw)
    ev = cfg.eval
    econf = ev.config
    results, strips = [], {}
    bar = tqdm(eps, desc="eval", unit="episode", disable=not progress)
    for ep_dir in bar:
        ep = read_episode(ep_dir)
        frames = np.stack(list(ep.frames()))
        keys = ep.action_space.keys
        g0 = next(iter(gens.values()))
        fov = crop_hfov_deg(float(ep.meta.config.get("fov_deg", 90.0)), ep.meta.width, ep.meta.height, g0.width,
                            g0.height)
        reference = SandboxReplay(ep, keys) if ep.meta.source == "sandbox" else None
        videos: dict[str, np.ndarray] = {}

        def keep(model: str, rollout: str, v: np.ndarray) -> None:
            if rollout == "recorded":
                videos[model] = v

        try:
            res = evaluate_episode(gens, frames, ep.keyboard().astype(np.float32), ep.mouse().astype(np.float32), keys,
                                   fov, observable=~ep.actions["collision"].to_numpy().astype(bool),
                                   reference=reference, config=econf, on_video=keep)
        finally:
            if reference is not None:
                reference.close()
        res.update(episode=ep.meta.episode_id, source=ep.meta.source, scene=ep.meta.scene, hfov_deg=fov,
                   ground_truth_replay=reference is not None)
        _optional_metrics(cfg, res, frames, videos, g0)
        results.append(res)
        if not strips:
            from model.evaluate import _resized

            strips = {"recording": _resized(frames[: max(v.shape[0] for v in videos.values())], g0.height, g0.width),
                      **videos}
    report = {"stage": "eval", "models": sorted(gens), "episodes": [r["episode"] for r in results],
              "split": {"by": cfg.curate.split.by, "test": cfg.curate.split.test, "salt": cfg.curate.split.salt},
              "summary": summarise(results), "results": results, "seconds": time.perf_counter() - t0,
              "notes": ["controllability: the camera-motion estimator (capture.motion) on each video against the actions "
                        "it was given; kappa 0 = chance, 1 = perfect; coverage = share of frames the estimator could "
                        "score (blurry generated frames are often unknown)",
                        "a null PSNR means identical frames (infinite PSNR)",
                        "lpips/fvd: " + ("computed with the weights given" if ev.lpips_weights or ev.fvd_weights
                                         else "n/a: no weights (eval.lpips_weights / eval.fvd_weights)")]}
    write_eval_html(report, strips, cfg.reports_dir / "eval.html")
    return report


def _optional_metrics(cfg: PipelineConfig, res: dict, frames: np.ndarray, videos: Mapping[str, np.ndarray], g0) -> None:
    """LPIPS and FVD of the recorded-action rollouts, only when the user supplied their weights."""
    ev = cfg.eval
    if not (ev.lpips_weights or ev.fvd_weights):
        return
    from model.evaluate import _resized

    for name, v in videos.items():
        ref = _resized(frames[: len(v)], v.shape[1], v.shape[2])
        entry = res["models"][name]["recorded"]
        if ev.lpips_weights:
            from model.metrics import LPIPS

            lp = LPIPS(*ev.lpips_weights)
            entry.setdefault("fidelity", {})["lpips"] = float(np.mean([lp(v[i], ref[i]) for i in range(1, len(v))]))
        if ev.fvd_weights:
            from model.metrics import fvd

            entry.setdefault("fidelity", {})["fvd_single_video"] = fvd([ref], [v], ev.fvd_weights)


__all__ = ["test_episodes", "BaseGenerator", "StudentGenerator", "load_generators", "SandboxReplay", "run_eval"]
