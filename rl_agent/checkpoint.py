"""Checkpoints: a stable-baselines3 PPO zip plus playmill metadata, loaded without unpickling.

A checkpoint is the zip ``PPO.save`` writes with one more member, ``playmill_rl.json``
(schema ``playmill.rl_checkpoint/1``): the full :class:`rl_agent.config.RLConfig`, the observation and action
spaces in words (image shape, state names, MultiDiscrete sizes, mouse bins, action repeat), the policy
architecture and ``num_timesteps``. Writes are atomic (temp file, then rename).

Loading never unpickles: the policy is rebuilt from the metadata and only the ``.pth`` weight members are read
(``torch.load(weights_only=True)``, through stable-baselines3's ``load_from_zip_file(load_data=False)``). A
checkpoint whose spaces differ from what the caller needs raises :class:`CheckpointMismatchError` naming each
difference; a file that is not a playmill checkpoint raises :class:`CheckpointError`.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rl_agent.actions import COMPONENTS, ActionCodec
from capture.errors import InputError
from capture.settings import ConfigError
from rl_agent.config import EnvConfig, RLConfig
from rl_agent.observation import observation_space, state_dim, state_names

if TYPE_CHECKING:
    from stable_baselines3.common.policies import ActorCriticPolicy

META_NAME = "playmill_rl.json"
CHECKPOINT_SCHEMA = "playmill.rl_checkpoint/1"


class CheckpointError(InputError):
    """A file that is not a readable playmill RL checkpoint."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint whose observation or action space differs from the one required."""


def policy_kwargs(cfg: RLConfig) -> dict[str, Any]:
    """stable-baselines3 ``policy_kwargs`` of a config (MultiInputPolicy: NatureCNN on the image, MLP heads)."""
    arch = [int(n) for n in cfg.ppo.net_arch]
    return {"net_arch": {"pi": arch, "vf": list(arch)},
            "features_extractor_kwargs": {"cnn_output_dim": int(cfg.ppo.cnn_features)}}


def spaces_meta(env: EnvConfig) -> dict[str, Any]:
    """The observation and action spaces of ``env`` in words (what the metadata records)."""
    codec = ActionCodec(env.yaw_bins_deg, env.pitch_bins_deg)
    return {
        "observation_space": {"image": [3, env.obs_height, env.obs_width], "image_dtype": "uint8",
                              "state_dim": state_dim(env), "state_names": state_names(env),
                              "ray_max_cm": env.ray_max_cm, "ray_scale_cm": env.ray_scale_cm,
                              "coverage_cell_cm": env.coverage_cell_cm},
        "action_space": {"type": "MultiDiscrete", "nvec": codec.nvec.tolist(), "components": list(COMPONENTS),
                         "yaw_bins_deg": list(env.yaw_bins_deg), "pitch_bins_deg": list(env.pitch_bins_deg),
                         "action_repeat": env.action_repeat, "fps": env.fps},
    }


def make_meta(cfg: RLConfig, num_timesteps: int) -> dict[str, Any]:
    out = {"schema": CHECKPOINT_SCHEMA, "producer": "playmill.rl_agent", "created_utc": datetime.now(timezone.utc).isoformat(),
           "num_timesteps": int(num_timesteps), "algorithm": "PPO", "policy": "MultiInputPolicy",
           "policy_kwargs": policy_kwargs(cfg), "config": cfg.to_dict()}
    out.update(spaces_meta(cfg.env))
    return out


def save_checkpoint(model: Any, path: str | os.PathLike, cfg: RLConfig) -> Path:
    """Write ``model`` (a stable-baselines3 PPO) and its metadata to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    model.save(buf)
    with zipfile.ZipFile(buf, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(META_NAME, json.dumps(make_meta(cfg, model.num_timesteps), indent=1))
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(buf.getvalue())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def read_checkpoint_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata of a checkpoint; :class:`CheckpointError` when ``path`` is not a playmill checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if META_NAME not in names:
                raise CheckpointError(f"{path}: not a playmill RL checkpoint (the zip has no {META_NAME}; members: {names[:8]})")
            meta = json.loads(zf.read(META_NAME).decode("utf-8"))
    except zipfile.BadZipFile as exc:
        raise CheckpointError(f"{path}: not a zip file ({exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: {META_NAME} is not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("schema") != CHECKPOINT_SCHEMA:
        raise CheckpointError(f"{path}: {META_NAME} has schema {meta.get('schema') if isinstance(meta, dict) else None!r}; "
                              f"expected {CHECKPOINT_SCHEMA!r}")
    return meta


def config_of(meta: dict[str, Any], path: str | os.PathLike = "<checkpoint>") -> RLConfig:
    """The :class:`RLConfig` recorded in a checkpoint's metadata."""
    try:
        return RLConfig.from_dict(meta.get("config"))
    except ConfigError as exc:
        raise CheckpointError(f"{path}: the recorded config is not valid: {exc}") from None


def compare_spaces(meta: dict[str, Any], env: EnvConfig, path: str | os.PathLike = "<checkpoint>",
                   what: str = "the requested") -> None:
    """Raise :class:`CheckpointMismatchError` when the checkpoint's observation or action space differs from
    ``env``'s, naming every difference."""
    want = spaces_meta(env)
    diffs = []
    for space in ("observation_space", "action_space"):
        have = meta.get(space, {})
        for k, v in want[space].items():
            if k == "fps":
                continue
            if have.get(k) != v:
                diffs.append(f"{space}.{k}: checkpoint has {have.get(k)!r}, {what} env has {v!r}")
    if diffs:
        raise CheckpointMismatchError(f"{path}: checkpoint does not match {what} environment: " + "; ".join(diffs))


@dataclass
class LoadedPolicy:
    """A policy rebuilt from a checkpoint: the torch module, its metadata, env config and action codec."""

    policy: "ActorCriticPolicy"
    meta: dict[str, Any]
    config: RLConfig
    codec: ActionCodec
    path: Path

    def action_probs(self, obs: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Per-component action probabilities for one observation (``float64`` arrays summing to 1)."""
        import torch

        with torch.no_grad():
            tensor, _ = self.policy.obs_to_tensor(obs)
            dist = self.policy.get_distribution(tensor)
            return [d.probs[0].cpu().double().numpy() for d in dist.distribution]


_cache: dict[tuple[str, float, int], LoadedPolicy] = {}


def load_policy(path: str | os.PathLike, expected_env: EnvConfig | None = None, device: str = "cpu") -> LoadedPolicy:
    """Rebuild the policy of a checkpoint (weights only, no unpickling; cached per file version).

    ``expected_env``: when given, its spaces must equal the checkpoint's (:class:`CheckpointMismatchError`)."""
    path = Path(path)
    meta = read_checkpoint_meta(path)
    cfg = config_of(meta, path)
    compare_spaces(meta, cfg.env, path, "its own recorded")  # the metadata is self-consistent
    if expected_env is not None:
        compare_spaces(meta, expected_env, path)
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime, st.st_size)
    if key in _cache:
        return _cache[key]
    from stable_baselines3.common.policies import MultiInputActorCriticPolicy
    from stable_baselines3.common.save_util import load_from_zip_file

    codec = ActionCodec(cfg.env.yaw_bins_deg, cfg.env.pitch_bins_deg)
    kwargs = meta.get("policy_kwargs") or policy_kwargs(cfg)
    policy = MultiInputActorCriticPolicy(observation_space(cfg.env), codec.space(), lambda _: 0.0, **kwargs)
    try:
        _, params, _ = load_from_zip_file(str(path), device=device, load_data=False)
    except Exception as exc:
        raise CheckpointError(f"{path}: the weights could not be read: {type(exc).__name__}: {exc}") from None
    if not params or "policy" not in params:
        raise CheckpointError(f"{path}: the zip has no policy weights (policy.pth)")
    try:
        policy.load_state_dict(params["policy"], strict=True)
    except RuntimeError as exc:
        raise CheckpointMismatchError(f"{path}: the weights do not fit the policy its metadata describes "
                                      f"(observation/action space or architecture differ): {exc}") from None
    policy.set_training_mode(False)
    policy.to(device)
    loaded = LoadedPolicy(policy, meta, cfg, codec, path)
    _cache.clear()  # one policy per process is what collection workers need
    _cache[key] = loaded
    return loaded


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    """The checkpoint with the most timesteps in ``directory`` (files ``ckpt_<timesteps>.zip``), or None."""
    d = Path(directory)
    if not d.is_dir():
        return None
    best: tuple[int, Path] | None = None
    for p in d.glob("ckpt_*.zip"):
        try:
            n = int(p.stem.split("_", 1)[1])
        except (IndexError, ValueError):
            continue
        if best is None or n > best[0]:
            best = (n, p)
    return None if best is None else best[1]
