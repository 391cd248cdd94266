"""Few-step causal distillation of the base world model (Matrix-Game 2.0's Self-Forcing stages).

Three stages, each a library entry point with a config dataclass (presets "tiny" and "mg2", ``from_dict``):

1. :func:`make_ode_pairs` (:class:`OdePairsConfig`): the teacher's sampling trajectories on real clips' first
   frames and actions, stored as Parquet shards with tensor columns (:mod:`model.distill.ode_pairs`).
2. :func:`distill_init` (:class:`DistillInitConfig`): the causal student, initialised from the teacher's weights,
   regresses its denoised output at a per-block random step of the few-step schedule onto the ODE endpoint
   (:mod:`model.distill.init`).
3. :func:`distill_dmd` (:class:`DistillDMDConfig`): DMD self-forcing: student rollouts with the KV cache,
   gradient through a random exit step, frozen teacher as real score, a trainable critic as fake score, on a
   designed action distribution (:class:`ActionDistribution`, :mod:`model.distill.actions`)
   (:mod:`model.distill.dmd`).

Stage 2 and 3 write *student runs*: ``model.bundle.load_bundle(run)`` loads them like base runs, and
``bundle.run["causal"]`` holds the :class:`model.causal.CausalConfig` fields to generate with
(:func:`load_student` returns both).
"""

from __future__ import annotations

from .actions import ActionDistribution, sample_action_batch, sample_actions
from .dmd import DistillDMDConfig, DistillDMDResult, distill_dmd, get_distill_dmd_config
from .init import DistillInitConfig, DistillInitResult, distill_init, get_distill_init_config, load_student
from .ode_pairs import OdePairs, OdePairsConfig, OdePairsResult, get_ode_pairs_config, make_ode_pairs

__all__ = [
    "ActionDistribution",
    "DistillDMDConfig",
    "DistillDMDResult",
    "DistillInitConfig",
    "DistillInitResult",
    "OdePairs",
    "OdePairsConfig",
    "OdePairsResult",
    "distill_dmd",
    "distill_init",
    "get_distill_dmd_config",
    "get_distill_init_config",
    "get_ode_pairs_config",
    "load_student",
    "make_ode_pairs",
    "sample_action_batch",
    "sample_actions",
]
