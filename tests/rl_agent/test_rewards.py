"""Reward terms: coverage grows only on new cells, collision penalty when blocked, novelty decays, entropy."""

from __future__ import annotations

import numpy as np
import pytest

from rl_agent import CoverageGrid, PlaymillEnv, VisitHistory
from rl_agent.config import RewardConfig
from rl_agent.rewards import ActionEntropyReward, CollisionPenalty, RewardFunction, entropy_bits

from .fakeworlds import BOX_ENV, BoxWorld, make_box_world

NVEC = np.array([3, 3, 2, 2, 7, 3])


def grid_2x3() -> CoverageGrid:
    """A walkable mesh of 100 cm quads over [0, 600] x [0, 200] with the cell [400, 600] x [0, 200] missing."""
    xs, ys = np.arange(0, 700, 100), np.arange(0, 300, 100)
    verts = np.array([[x, y, 0.0] for y in ys for x in xs])
    nx = len(xs)
    polys = [[j * nx + i, j * nx + i + 1, (j + 1) * nx + i + 1, (j + 1) * nx + i]
             for j in range(2) for i in range(6) if i < 4]
    return CoverageGrid.from_mesh(verts, polys, 200.0)


def test_coverage_counts_only_new_navigable_cells():
    g = grid_2x3()
    assert g.n_navigable == 2  # [0,200] and [200,400]; [400,600] has no walkable polygon
    assert g.visit(50, 50) == 1
    assert g.visit(150, 150) == 0  # same cell again
    assert g.visit(250, 10) == 1
    assert g.visit(450, 50) == 0  # not navigable
    assert g.visit(-500, 50) == 0  # outside the grid
    assert g.n_covered == 2 and g.fraction == pytest.approx(1.0)
    f = g.fresh()
    assert f.n_covered == 0 and f.visit(50, 50) == 1


def test_coverage_of_large_polygons_and_unbounded_grid():
    verts = np.array([[0, 0, 0], [1000, 0, 0], [0, 1000, 0]], dtype=float)  # one big triangle
    g = CoverageGrid.from_mesh(verts, [[0, 1, 2]], 200.0)
    assert g.is_navigable(g.cell_of(100, 100)) and not g.is_navigable(g.cell_of(900, 900))
    u = CoverageGrid(200.0)
    assert u.visit(1e6, -1e6) == 1 and u.visit(1e6 + 10, -1e6) == 0 and np.isnan(u.fraction)


def test_exploration_reward_in_the_env_grows_only_on_new_cells():
    env = PlaymillEnv({**BOX_ENV, "max_frames": 400}, make_world=make_box_world, shield={"enabled": False})
    env.reset(seed=0)
    turn = np.array([0, 0, 0, 0, 6, 1])  # turn in place: no new cell
    for _ in range(5):
        _, _, _, _, info = env.step(turn)
        assert info["reward_terms"]["exploration"] == 0.0
    gains = []
    for _ in range(40):  # walk: some steps enter a new cell
        _, _, _, _, info = env.step(np.array([1, 0, 0, 0, 3, 1]))
        gains.append(info["reward_terms"]["exploration"])
    assert sum(g > 0 for g in gains) >= 2 and all(g in (0.0, 1.0) for g in gains)
    assert info["coverage_cells"] == 1 + sum(g > 0 for g in gains)


def test_collision_penalty_when_blocked():
    pen = CollisionPenalty(penalize_shield=True)
    assert pen(True) == 1.0 and pen(False) == 0.0 and pen(False, intervened=True) == 1.0
    assert CollisionPenalty(penalize_shield=False)(False, intervened=True) == 0.0
    # in the env: walk into the wall of the box with the shield off
    env = PlaymillEnv({**BOX_ENV, "max_frames": 400}, make_world=lambda s, p: BoxWorld(s, p, start_xy=(465.0, 0.0)),
                      shield={"enabled": False}, reward={"collision": 0.5})
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([1, 0, 0, 0, 3, 1]))  # 2 frames forward towards +x: blocked
    assert info["collision"] >= 1
    assert info["reward_terms"]["collision"] == pytest.approx(-0.5 * info["collision"])
    _, _, _, _, info = env.step(np.array([2, 0, 0, 0, 3, 1]))  # back off: free
    assert info["collision"] == 0 and info["reward_terms"]["collision"] == 0.0


def test_novelty_decays_for_bins_revisited_in_later_episodes():
    hist = VisitHistory(200.0, heading_bins=4)
    rf = RewardFunction(RewardConfig(novelty=1.0), NVEC, hist)
    path = [(x, 50.0, 0.0) for x in range(0, 1000, 50)]

    def episode() -> float:
        rf.reset(CoverageGrid(200.0), ("box", 7))
        total = sum(rf.frame(x, y, yaw, False, False)["novelty"] for x, y, yaw in path)
        rf.end_episode()
        return total

    first, second, third = episode(), episode(), episode()
    assert first == pytest.approx(5.0)  # 5 cells x one heading bin, never seen before
    assert second == pytest.approx(5.0 / np.sqrt(2.0))
    assert third == pytest.approx(5.0 / np.sqrt(3.0))
    # a new heading in the same cells is novel again; another scene key has its own history
    rf.reset(CoverageGrid(200.0), ("box", 7))
    assert rf.frame(50.0, 50.0, 180.0, False, False)["novelty"] == pytest.approx(1.0)
    rf.reset(CoverageGrid(200.0), ("box", 8))
    assert rf.frame(50.0, 50.0, 0.0, False, False)["novelty"] == pytest.approx(1.0)


def test_action_entropy_term():
    ent = ActionEntropyReward(NVEC, window=16)
    same = [ent(np.array([1, 0, 0, 0, 3, 1])) for _ in range(16)]
    assert same[-1] == 0.0
    rng = np.random.default_rng(0)
    varied = [ent(rng.integers(0, NVEC)) for _ in range(64)]
    assert 0.7 < varied[-1] <= 1.0
    assert entropy_bits({0: 5, 1: 5}) == pytest.approx(1.0) and entropy_bits([4]) == 0.0


def test_reward_terms_are_weighted_separately():
    rf = RewardFunction(RewardConfig(collision=2.0, exploration=3.0, novelty=0.0, action_entropy=0.0), NVEC,
                        VisitHistory(200.0, 4))
    rf.reset(CoverageGrid(200.0), "k")
    t = rf.frame(10.0, 10.0, 0.0, True, False)
    assert t == {"collision": -2.0, "exploration": 3.0, "novelty": 0.0}
    assert rf.decision(np.array([0, 0, 0, 0, 3, 1])) == {"action_entropy": 0.0}
    assert rf.episode_terms["collision"] == -2.0 and rf.episode_raw["novelty"] == 1.0
