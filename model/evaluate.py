"""Evaluate world models on held-out episodes: action controllability, fidelity, temporal quality, scene memory.

For each test episode, from its first frame, each model generates under (a) the episode's recorded actions and
(b) composite action scripts in the GameWorld manner (:func:`action_script`: each key held, turns left/right,
looks up/down, a combination, a pause; for a model that streams long videos one composite script of all of them),
plus the controls below. Measured (:func:`evaluate_episode`):

* **action controllability** (:func:`controllability`): the camera-motion estimator of :mod:`capture.motion`
  on the generated video against the *input* actions. Mouse: per frame, commanded and visual (d_pitch, d_yaw)
  each mapped to 9 classes (still, 4 directions, 4 diagonals; dead zone ``dead_zone_deg``), accuracy = share of
  frames that match (GameWorld's form), with the chance level ``sum_c p_cmd(c) p_vis(c)`` of independent
  videos and Cohen's kappa ``(acc - chance) / (1 - chance)`` (1: perfect, 0: chance; undefined when the
  commands never vary), plus mean absolute yaw and pitch errors (deg/frame). Keyboard: on frames where W/S or
  A/D is held, the visual translation direction (flow left after removing the visual rotation) per axis
  (forward/back/none, left/right/none) against the key: accuracy, chance and kappa likewise. Per action class, the share of its frames whose visual motion goes the commanded way.
  Frames the estimator is unsure of are left out (``coverage`` says how many were scored).
* **fidelity** where the world is deterministic: PSNR and SSIM of each generated frame against the recording
  (recorded actions) or a replay of the world under the script (``reference``), as curves over time.
* **temporal quality**: VBench flicker score and the DIS flow-warping error (:mod:`model.metrics`).
* **scene consistency (memory)**: after a loop that brings the camera back to its start pose (turn 360 degrees;
  walk out and back) of ``L`` frames, the generated frame ``L`` against frame 0 (PSNR, SSIM), per ``L``; beside
  it the same for the world's own replay (what a perfect model would score: NPCs move meanwhile).
* **baselines** in the same run: the recording itself against its actions (controllability near 100 %), the
  recording against time-shuffled actions (both over the whole recording) and the models given shuffled or zero
  actions (scored against the original actions: chance), and a frozen first frame over the models' rollout length
  (fidelity and temporal floor).

Models are plain callables (:class:`Generator`), so the same code evaluates the base model, the causal
student, Matrix-Game 2.0's released checkpoints, or anything else that maps (first frame, actions) to frames.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, Callable, Mapping, Protocol, Sequence

import numpy as np

from capture.motion import BACK, FORWARD, LEFT, RIGHT, MotionConfig, analyse_frames
from capture.settings import Field, settings

#: Action classes of the scripts (GameWorld-style single actions and a combination).
ACTION_CLASSES: tuple[str, ...] = ("forward", "back", "left", "right", "turn_left", "turn_right", "look_up",
                                   "look_down", "forward_turn_right", "idle")


class Generator(Protocol):
    """A world model as the evaluation sees it: ``frames`` (its rollout length, 1 + 4k), ``height``/``width``,
    and ``__call__(image uint8 [H, W, 3], keyboard [T, K] dataset keys, mouse [T, 2] degrees) -> uint8 [T, H, W, 3]``."""

    frames: int
    height: int
    width: int

    def __call__(self, image: np.ndarray, keyboard: np.ndarray, mouse: np.ndarray) -> np.ndarray: ...


# --------------------------------------------------------------------------------------------------------
# action scripts


def action_script(name: str, frames: int, keys: Sequence[str], turn_deg: float = 4.0, look_deg: float = 2.0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``(keyboard float32 [T, K], mouse float32 [T, 2])`` holding one action class of :data:`ACTION_CLASSES` for
    ``frames`` frames (row 0 idle, like a recording). ``turn_deg``/``look_deg``: degrees per frame."""
    kb = np.zeros((frames, len(keys)), np.float32)
    mouse = np.zeros((frames, 2), np.float32)

    def hold(k: str) -> None:
        if k in keys:
            kb[1:, list(keys).index(k)] = 1.0

    if name in ("forward", "forward_turn_right"):
        hold("w")
    elif name == "back":
        hold("s")
    elif name == "left":
        hold("a")
    elif name == "right":
        hold("d")
    if name in ("turn_right", "forward_turn_right"):
        mouse[1:, 1] = turn_deg
    elif name == "turn_left":
        mouse[1:, 1] = -turn_deg
    elif name == "look_up":
        mouse[1:, 0] = look_deg
    elif name == "look_down":
        mouse[1:, 0] = -look_deg
    elif name not in ACTION_CLASSES:
        raise ValueError(f"unknown action class {name!r}; expected one of {', '.join(ACTION_CLASSES)}")
    return kb, mouse


def composite_script(frames: int, keys: Sequence[str], classes: Sequence[str] = ACTION_CLASSES, **kw: float
                     ) -> tuple[np.ndarray, np.ndarray]:
    """One script of ``frames`` frames visiting each class for an equal share of the frames after row 0 (look up
    and look down follow each other, so the pitch returns)."""
    kb = np.zeros((frames, len(keys)), np.float32)
    mouse = np.zeros((frames, 2), np.float32)
    bounds = np.linspace(1, frames, len(classes) + 1).round().astype(int)
    for c, a, b in zip(classes, bounds[:-1], bounds[1:]):
        k, m = action_script(c, b - a + 1, keys, **kw)
        kb[a:b], mouse[a:b] = k[1:], m[1:]
    return kb, mouse


def loop_script(kind: str, length: int, frames: int, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """A loop that returns to the start pose at frame ``length``: ``turn`` (360 degrees of yaw over ``length``
    frames) or ``walk`` (W for half, S for the other half); idle after it, ``frames`` rows in all."""
    kb = np.zeros((frames, len(keys)), np.float32)
    mouse = np.zeros((frames, 2), np.float32)
    if kind == "turn":
        mouse[1:length + 1, 1] = 360.0 / length
    elif kind == "walk":
        half = length // 2
        if "w" in keys:
            kb[1:half + 1, list(keys).index("w")] = 1.0
        if "s" in keys:
            kb[half + 1:length + 1, list(keys).index("s")] = 1.0
    else:
        raise ValueError(f"unknown loop {kind!r}: turn or walk")
    return kb, mouse


# --------------------------------------------------------------------------------------------------------
# controllability


def _classes(v: np.ndarray, dz: float) -> np.ndarray:
    return np.where(v > dz, 1, np.where(v < -dz, -1, 0))


def _agreement(cmd: np.ndarray, vis: np.ndarray) -> tuple[float, float, float]:
    """(accuracy, chance, kappa) of two label arrays."""
    if len(cmd) == 0:
        return math.nan, math.nan, math.nan
    acc = float(np.mean(cmd == vis))
    cats = np.union1d(cmd, vis)
    chance = float(sum(np.mean(cmd == c) * np.mean(vis == c) for c in cats))
    kappa = (acc - chance) / (1.0 - chance) if chance < 1.0 else math.nan
    return acc, chance, kappa


@dataclass
class Controllability:
    """How well a video follows actions (module doc). Accuracies are shares of scored frames; ``coverage``: the
    share of frames the estimator could score; ``per_class``: accuracy per action class (frames scored)."""

    frames: int = 0
    coverage: float = 0.0
    mouse_acc: float = math.nan
    mouse_chance: float = math.nan
    mouse_kappa: float = math.nan
    yaw_mae_deg: float = math.nan
    pitch_mae_deg: float = math.nan
    keyboard_acc: float = math.nan
    keyboard_chance: float = math.nan
    keyboard_kappa: float = math.nan
    per_class: dict[str, float] = field(default_factory=dict)
    per_class_frames: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return _clean(asdict(self))


def controllability(frames: np.ndarray, keyboard: np.ndarray, mouse: np.ndarray, keys: Sequence[str],
                    hfov_deg: float, *, dead_zone_deg: float = 0.5, observable: np.ndarray | None = None,
                    derotate: str = "visual", motion_config: MotionConfig = MotionConfig()) -> Controllability:
    """Score a video ``[T, H, W, 3]`` against the actions that were meant to drive it (module doc). ``observable``:
    frames whose translation could show (e.g. not blocked by a wall); others are not scored for the keyboard.
    ``derotate``: remove the ``visual`` rotation (default: the keyboard score does not depend on how well the
    mouse was followed) or the ``commanded`` one before reading the translation."""
    n = min(len(frames), len(keyboard), len(mouse))
    m = analyse_frames(np.asarray(frames[:n]), hfov_deg, motion_config)
    kb = np.asarray(keyboard[:n]) > 0.5
    ms = np.asarray(mouse[:n], np.float64)
    known = m.known.copy()
    known[0] = False
    out = Controllability(frames=n, coverage=float(known[1:].mean()) if n > 1 else 0.0)
    if not known.any():
        return out
    cy, cp = _classes(ms[:, 1], dead_zone_deg), _classes(ms[:, 0], dead_zone_deg)
    vy, vp = _classes(np.nan_to_num(m.yaw_deg), dead_zone_deg), _classes(np.nan_to_num(m.pitch_deg), dead_zone_deg)
    out.mouse_acc, out.mouse_chance, out.mouse_kappa = _agreement((3 * cy + cp)[known], (3 * vy + vp)[known])
    out.yaw_mae_deg = float(np.mean(np.abs(m.yaw_deg[known] - ms[known, 1])))
    out.pitch_mae_deg = float(np.mean(np.abs(m.pitch_deg[known] - ms[known, 0])))
    col = {k: kb[:, i] for i, k in enumerate(keys)}
    z = np.zeros(n, bool)
    cf = col.get("w", z).astype(int) - col.get("s", z).astype(int)
    cs = col.get("d", z).astype(int) - col.get("a", z).astype(int)
    d = m.directions() if derotate == "visual" else m.directions(ms[:, 0], ms[:, 1])
    vf = np.where(d == FORWARD, 1, np.where(d == BACK, -1, 0))
    vs = np.where(d == RIGHT, 1, np.where(d == LEFT, -1, 0))
    obs = known & (np.ones(n, bool) if observable is None else np.asarray(observable[:n], bool))
    sf, ss = obs & (cf != 0), obs & (cs != 0)  # frames with a movement key held, per axis
    out.keyboard_acc, out.keyboard_chance, out.keyboard_kappa = _agreement(
        np.concatenate([cf[sf], 10 + cs[ss]]), np.concatenate([vf[sf], 10 + vs[ss]]))
    tests = {
        "forward": (obs & (cf > 0), vf > 0), "back": (obs & (cf < 0), vf < 0),
        "left": (obs & (cs < 0), vs < 0), "right": (obs & (cs > 0), vs > 0),
        "turn_left": (known & (cy < 0), vy < 0), "turn_right": (known & (cy > 0), vy > 0),
        "look_up": (known & (cp > 0), vp > 0), "look_down": (known & (cp < 0), vp < 0),
        "idle": (obs & (cf == 0) & (cs == 0) & (cy == 0) & (cp == 0), (vf == 0) & (vs == 0) & (vy == 0) & (vp == 0)),
    }
    for name, (sel, hit) in tests.items():
        if sel.any():
            out.per_class[name] = float(np.mean(hit[sel]))
            out.per_class_frames[name] = int(sel.sum())
    return out


# --------------------------------------------------------------------------------------------------------
# one episode


@settings
class EvalConfig:
    """What :func:`evaluate_episode` runs and measures (the keys of pipeline.yaml's ``eval:`` section that are not
    about which episodes and models)."""

    scripts: bool = Field(True, description="also the GameWorld-style action scripts (each key, turns, looks, a combination, a pause)")
    loops: tuple[Annotated[int, Field(ge=2)], ...] = Field(
        (16, 32), description="scene-consistency loops back to the start pose (turn 360 deg; walk out and back), frames "
                              "(those shorter than a model's rollout)")
    dead_zone_deg: float = Field(0.5, ge=0, description="mouse motion below this is 'still' in the controllability classes, degrees per frame")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="seed of the noise and the action shuffle")
    turn_deg: float = Field(4.0, gt=0, le=45, description="turn rate of the action scripts, degrees per frame")
    look_deg: float = Field(2.0, gt=0, le=45, description="look up/down rate of the action scripts, degrees per frame")


def _clean(obj: Any) -> Any:
    """JSON-safe: NaN/inf floats become None, numpy scalars plain numbers."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def fidelity(generated: np.ndarray, reference: np.ndarray) -> dict[str, Any]:
    """PSNR/SSIM curves over time and their means (the first frame, given to the model, is left out of the means)."""
    from .metrics import frame_curves

    p, s = frame_curves(generated, reference)
    pf = [x for x in p[1:] if math.isfinite(x)]
    return {"psnr_db": float(np.mean(pf)) if pf else math.inf, "ssim": float(np.mean(s[1:])) if len(s) > 1 else math.nan,
            "psnr_curve": p, "ssim_curve": s}


def temporal(frames: np.ndarray) -> dict[str, float]:
    from .metrics import flicker_score, warp_error

    return {"flicker": flicker_score(frames), "warp_error": warp_error(frames)}


def crop_hfov_deg(hfov_deg: float, src_w: int, src_h: int, dst_w: int, dst_h: int) -> float:
    """Horizontal field of view after :func:`model.sample.load_image`'s resize-to-cover and centre crop from
    ``src_w`` x ``src_h`` to ``dst_w`` x ``dst_h``: ``2 atan(tan(hfov / 2) * dst_w / (src_w * scale))``,
    ``scale = max(dst_h / src_h, dst_w / src_w)``."""
    scale = max(dst_h / src_h, dst_w / src_w)
    return float(np.degrees(2 * np.arctan(np.tan(np.radians(hfov_deg) / 2) * dst_w / (src_w * scale))))


def _resized(frames: np.ndarray, h: int, w: int) -> np.ndarray:
    from .sample import load_image

    return np.stack([load_image(f, h, w) for f in frames])


@dataclass
class _Episode:
    """One recorded episode as the scores need it: the recording (resized per model resolution, cached), its
    actions (float32) over ``keys``, the camera's hfov, the frames where a move could show, the seeded ``rng`` of
    the shuffled controls and the world's replay under other actions (``reference``, cached; None: none)."""

    recording: np.ndarray
    keyboard: np.ndarray
    mouse: np.ndarray
    keys: Sequence[str]
    hfov_deg: float
    observable: np.ndarray | None
    reference: Callable[[np.ndarray, np.ndarray], np.ndarray] | None
    config: EvalConfig
    rng: np.random.Generator
    _resized: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)
    _replays: dict[str, np.ndarray] = field(default_factory=dict)

    def at(self, h: int, w: int) -> np.ndarray:
        """The recording at ``h`` x ``w`` (resized like a model's conditioning frame)."""
        if (h, w) not in self._resized:
            self._resized[(h, w)] = _resized(self.recording, h, w)
        return self._resized[(h, w)]

    def shuffled(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """The first ``t`` actions, shuffled in time but for the first."""
        perm = np.concatenate([[0], 1 + self.rng.permutation(t - 1)])
        return self.keyboard[:t][perm], self.mouse[:t][perm]

    def score(self, frames: np.ndarray, kb: np.ndarray, ms: np.ndarray,
              observable: np.ndarray | None = None) -> dict[str, Any]:
        """:func:`controllability` of ``frames`` against the actions ``kb`` / ``ms``, as a dict."""
        return controllability(frames, kb, ms, self.keys, self.hfov_deg, observable=observable,
                               dead_zone_deg=self.config.dead_zone_deg).to_dict()

    def replay(self, name: str, kb: np.ndarray, ms: np.ndarray, h: int, w: int) -> np.ndarray | None:
        """The world under the actions ``kb`` / ``ms`` (script ``name``) at ``h`` x ``w``; None without a reference."""
        if self.reference is None:
            return None
        key = f"{name}:{len(kb)}:{h}x{w}"
        if key not in self._replays:
            self._replays[key] = _resized(self.reference(kb, ms), h, w)
        return self._replays[key]


def _baselines(ep: _Episode, models: Mapping[str, Generator]) -> dict[str, Any]:
    """The scores that need no model, at the first model's resolution (or the recording's)."""
    first = next(iter(models.values()), None)
    h, w = (first.height, first.width) if first is not None else ep.recording.shape[1:3]
    n_rec = len(ep.recording)
    # the baselines cover the longest model rollout (same frames as the models are scored on), or the whole recording
    t_long = max(g.frames for g in models.values()) if models else n_rec
    t_long = min(t_long, n_rec)
    # the recording's own controllability (the estimator's check) uses the whole recording; the frozen first frame
    # is scored on the frames the models generate
    rec_all = ep.at(h, w)
    skb, sms = ep.shuffled(n_rec)
    rec = rec_all[:t_long]
    obs = None if ep.observable is None else ep.observable[:t_long]
    frozen = np.repeat(rec[:1], t_long, axis=0)
    return {
        "recording": {"controllability": ep.score(rec_all, ep.keyboard, ep.mouse, ep.observable),
                      "temporal": temporal(rec)},
        "recording_shuffled_actions": {"controllability": ep.score(rec_all, skb, sms, ep.observable)},
        "frozen_first_frame": {"controllability": ep.score(frozen, ep.keyboard[:t_long], ep.mouse[:t_long], obs),
                               "fidelity": fidelity(frozen, rec), "temporal": temporal(frozen)},
        "frames": t_long, "recording_frames": n_rec,
    }


_Rollout = Callable[[str, np.ndarray, np.ndarray], np.ndarray]


def _script_scores(ep: _Episode, gen: Generator, run: _Rollout, t: int) -> dict[str, Any]:
    """The model under the action scripts (one composite script for long rollouts): controllability, temporal
    quality and, with a reference, fidelity to the world's replay."""
    cfg = ep.config
    if t >= 4 * len(ACTION_CLASSES):  # long rollouts: one composite script
        scripts = {"composite": composite_script(t, ep.keys, turn_deg=cfg.turn_deg, look_deg=cfg.look_deg)}
    else:
        scripts = {c: action_script(c, t, ep.keys, cfg.turn_deg, cfg.look_deg) for c in ACTION_CLASSES}
    out: dict[str, Any] = {}
    for sname, (kb, ms) in scripts.items():
        v = run(f"script:{sname}", kb, ms)
        entry = {"controllability": ep.score(v, kb, ms), "temporal": temporal(v)}
        ref = ep.replay(sname, kb, ms, gen.height, gen.width)
        if ref is not None:
            entry["fidelity"] = fidelity(v, ref)
        out[sname] = entry
    return out


def _loop_scores(ep: _Episode, gen: Generator, run: _Rollout, t: int) -> list[dict[str, Any]]:
    """Scene memory: frame ``L`` of a loop back to the start pose against frame 0, per loop length ``L`` that fits
    the rollout, beside the world's replay of the same loop."""
    from .metrics import psnr, ssim

    loops = []
    for length in ep.config.loops:
        if length + 1 > t:
            continue
        t_loop = min(t, 1 + 4 * math.ceil(length / 4))  # the loop and nothing after it
        for kind in ("turn", "walk"):
            kb, ms = loop_script(kind, length, t_loop, ep.keys)
            v = run(f"loop:{kind}:{length}", kb, ms)
            entry = {"kind": kind, "length": length, "psnr_db": psnr(v[length], v[0]), "ssim": ssim(v[length], v[0])}
            ref = ep.replay(f"loop-{kind}-{length}", kb, ms, gen.height, gen.width)
            if ref is not None:
                entry["world_psnr_db"] = psnr(ref[length], ref[0])
                entry["world_ssim"] = ssim(ref[length], ref[0])
            loops.append(entry)
    return loops


def _model_scores(ep: _Episode, mname: str, gen: Generator,
                  on_video: Callable[[str, str, np.ndarray], None] | None) -> dict[str, Any]:
    """One model on the episode: recorded, shuffled and zero actions (all scored against the recorded ones),
    the action scripts and the loops."""
    n_rec = len(ep.recording)
    t = min(gen.frames, n_rec if n_rec >= 1 else gen.frames)
    t = 1 + 4 * ((t - 1) // 4)
    r = ep.at(gen.height, gen.width)[:t]
    o = None if ep.observable is None else ep.observable[:t]
    kb, ms = ep.keyboard[:t], ep.mouse[:t]

    def run(label: str, kb: np.ndarray, ms: np.ndarray) -> np.ndarray:
        v = gen(r[0], kb, ms)
        if on_video is not None:
            on_video(mname, label, v)
        return v

    res: dict[str, Any] = {"frames": t}
    v = run("recorded", kb, ms)
    res["recorded"] = {"controllability": ep.score(v, kb, ms, o), "fidelity": fidelity(v, r), "temporal": temporal(v)}
    v = run("shuffled", *ep.shuffled(t))
    res["shuffled_actions"] = {"controllability": ep.score(v, kb, ms, o)}
    v = run("zero", np.zeros_like(kb), np.zeros_like(ms))
    res["zero_actions"] = {"controllability": ep.score(v, kb, ms, o)}
    if ep.config.scripts:
        res["scripts"] = _script_scores(ep, gen, run, t)
        res["scripts_mean"] = _mean_controllability([e["controllability"] for e in res["scripts"].values()])
    res["loops"] = _loop_scores(ep, gen, run, t)
    return res


def evaluate_episode(
    models: Mapping[str, Generator],
    recording: np.ndarray,
    keyboard: np.ndarray,
    mouse: np.ndarray,
    keys: Sequence[str],
    hfov_deg: float,
    *,
    observable: np.ndarray | None = None,
    reference: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    config: EvalConfig = EvalConfig(),
    on_video: Callable[[str, str, np.ndarray], None] | None = None,
) -> dict[str, Any]:
    """Evaluate ``models`` on one episode (module doc).

    ``recording`` uint8 [N, H, W, 3] (any size: resized like the model's conditioning frame), ``keyboard`` [N, K]
    over ``keys`` and ``mouse`` [N, 2] (d_pitch, d_yaw degrees) its recorded actions, ``observable`` bool [N] (e.g.
    not colliding). ``reference(keyboard, mouse) -> frames``: a deterministic replay of the world under other
    actions (the sandbox), or None. ``on_video(model, rollout, frames)``: called with each generated video (e.g. to
    keep strips). Returns a JSON-able dict: ``baselines`` and ``models`` (see module doc)."""
    ep = _Episode(recording, np.asarray(keyboard, np.float32), np.asarray(mouse, np.float32), keys, hfov_deg,
                  None if observable is None else np.asarray(observable), reference, config,
                  np.random.default_rng(config.seed))
    out: dict[str, Any] = {"baselines": _baselines(ep, models), "models": {}}
    for mname, gen in models.items():
        out["models"][mname] = _model_scores(ep, mname, gen, on_video)
    return _clean(out)


def _mean_controllability(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    keys = ("mouse_acc", "mouse_kappa", "keyboard_acc", "keyboard_kappa", "yaw_mae_deg", "coverage")
    out: dict[str, Any] = {}
    for k in keys:
        vals = [it[k] for it in items if it.get(k) is not None]
        out[k] = float(np.mean(vals)) if vals else None
    classes: dict[str, list[float]] = {}
    for it in items:
        for c, v in (it.get("per_class") or {}).items():
            classes.setdefault(c, []).append(v)
    out["per_class"] = {c: float(np.mean(v)) for c, v in classes.items()}
    return out


def summarise(episodes: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Averages over episodes of the headline numbers: one row per baseline and per (model, rollout)."""
    rows: dict[str, list[Mapping[str, Any]]] = {}

    def add(name: str, entry: Mapping[str, Any] | None) -> None:
        if entry:
            rows.setdefault(name, []).append(entry)

    for ep in episodes:
        b = ep.get("baselines", {})
        add("recording", b.get("recording"))
        add("recording + shuffled actions", b.get("recording_shuffled_actions"))
        add("frozen first frame", b.get("frozen_first_frame"))
        for m, r in ep.get("models", {}).items():
            add(f"{m}: recorded actions", r.get("recorded"))
            add(f"{m}: shuffled actions", r.get("shuffled_actions"))
            add(f"{m}: zero actions", r.get("zero_actions"))
            if r.get("scripts_mean"):
                add(f"{m}: action scripts", {"controllability": r["scripts_mean"]})
    out: dict[str, Any] = {}
    for name, entries in rows.items():
        row: dict[str, Any] = {}
        for group, fields_ in (("controllability", ("mouse_acc", "mouse_kappa", "keyboard_acc", "keyboard_kappa",
                                                    "yaw_mae_deg", "coverage")),
                               ("fidelity", ("psnr_db", "ssim")), ("temporal", ("flicker", "warp_error"))):
            for f in fields_:
                vals = [e[group][f] for e in entries if e.get(group) and e[group].get(f) is not None]
                if vals:
                    row[f] = float(np.mean(vals))
        out[name] = row
    return _clean(out)


__all__ = ["ACTION_CLASSES", "Generator", "action_script", "composite_script", "loop_script", "Controllability",
           "controllability", "crop_hfov_deg", "EvalConfig", "fidelity", "temporal", "evaluate_episode", "summarise"]
