"""Kinematic agent and 2-D collision: pure NumPy, no rendering."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capture.rotations import rotator_to_quat
from unreal_bridge.sandbox.agent import AgentParams, move_intent, spawn_agent, step_agent
from unreal_bridge.sandbox.collision import Circle, Rect, ShapeSet, move_circle

P = AgentParams()
DT = 1.0 / 25.0
OPEN: list[ShapeSet] = [ShapeSet.empty()]


def run(keys, frames, yaw=0.0, obstacles=OPEN, start=(0.0, 0.0), d_yaw=0.0, d_pitch=0.0, dt=DT):
    s = spawn_agent(np.array(start), yaw, P)
    states = [s]
    for _ in range(frames):
        s = step_agent(s, frozenset(keys), d_pitch, d_yaw, dt, P, obstacles)
        states.append(s)
    return states


def test_spawn_eye_height_and_orientation():
    s = spawn_agent(np.array([10.0, 20.0]), 30.0, P)
    np.testing.assert_array_equal(s.eye_cm, [10.0, 20.0, 170.0])
    np.testing.assert_allclose(s.quat_wxyz, rotator_to_quat(0.0, 30.0, 0.0), atol=0)
    assert s.feet_cm.dtype == np.float64


@pytest.mark.parametrize("yaw, direction", [(0.0, (1, 0)), (90.0, (0, 1)), (180.0, (-1, 0)), (-90.0, (0, -1))])
def test_forward_walk_speed_along_yaw(yaw, direction):
    states = run({"w"}, 25, yaw=yaw)
    disp = states[-1].feet_cm[:2] - states[0].feet_cm[:2]
    np.testing.assert_allclose(disp, np.array(direction) * P.walk_cm_s, atol=1e-9)
    assert not any(s.collision for s in states)


def test_back_and_strafe_directions():
    np.testing.assert_allclose(run({"s"}, 25)[-1].feet_cm[:2], [-300.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(run({"d"}, 25)[-1].feet_cm[:2], [0.0, 300.0], atol=1e-9)  # right is +Y at yaw 0
    np.testing.assert_allclose(run({"a"}, 25)[-1].feet_cm[:2], [0.0, -300.0], atol=1e-9)
    np.testing.assert_allclose(run({"w", "s"}, 25)[-1].feet_cm[:2], [0.0, 0.0], atol=0)


def test_diagonals_are_normalised():
    end = run({"w", "d"}, 25)[-1].feet_cm[:2]
    assert np.linalg.norm(end) == pytest.approx(P.walk_cm_s, abs=1e-9)
    np.testing.assert_allclose(end, [300 / math.sqrt(2), 300 / math.sqrt(2)], atol=1e-9)


def test_sprint_and_crouch_speeds():
    assert run({"w", "shift"}, 25)[-1].feet_cm[0] == pytest.approx(P.sprint_cm_s, abs=1e-9)
    crouch = run({"w", "ctrl"}, 25)
    assert crouch[-1].feet_cm[0] == pytest.approx(P.crouch_cm_s, abs=1e-9)
    assert crouch[-1].eye_height_cm == pytest.approx(P.crouch_eye_height_cm)
    assert np.linalg.norm(move_intent(frozenset({"w", "shift", "ctrl"}), 0.0, P)) == pytest.approx(P.crouch_cm_s)


def test_jump_rises_and_returns_to_ground():
    s = spawn_agent(np.zeros(2), 0.0, P)
    heights = []
    for i in range(60):
        s = step_agent(s, frozenset({"space"} if i == 0 else ()), 0.0, 0.0, DT, P, OPEN)
        heights.append(s.feet_cm[2])
    heights = np.array(heights)
    apex = P.jump_speed_cm_s**2 / (2 * P.gravity_cm_s2)
    assert 0.95 * apex < heights.max() <= apex + 1e-9
    airtime = np.count_nonzero(heights > 0) * DT
    assert airtime == pytest.approx(2 * P.jump_speed_cm_s / P.gravity_cm_s2, abs=2 * DT)
    assert heights[-1] == 0.0 and s.on_ground and s.vz_cm_s == 0.0


def test_no_jump_in_the_air():
    s = spawn_agent(np.zeros(2), 0.0, P)
    s = step_agent(s, frozenset({"space"}), 0.0, 0.0, DT, P, OPEN)
    vz_after_one = s.vz_cm_s
    s2 = step_agent(s, frozenset({"space"}), 0.0, 0.0, DT, P, OPEN)
    assert s2.vz_cm_s == pytest.approx(vz_after_one - P.gravity_cm_s2 * DT)


def test_pitch_is_clamped_and_yaw_accumulates_unwrapped():
    up = run(set(), 3, d_pitch=50.0)
    assert up[-1].pitch_deg == P.pitch_limit_deg
    down = run(set(), 3, d_pitch=-50.0)
    assert down[-1].pitch_deg == -P.pitch_limit_deg
    spin = run(set(), 10, d_yaw=40.0)
    assert spin[-1].yaw_deg == 400.0
    np.testing.assert_allclose(spin[-1].quat_wxyz, rotator_to_quat(0.0, 400.0, 0.0), atol=0)


def test_mouse_turn_applies_before_moving():
    # turning right by 90 degrees in the same frame moves along +Y
    s = step_agent(spawn_agent(np.zeros(2), 0.0, P), frozenset({"w"}), 0.0, 90.0, DT, P, OPEN)
    np.testing.assert_allclose(s.feet_cm[:2], [0.0, P.walk_cm_s * DT], atol=1e-9)


def test_slides_along_a_wall():
    wall = ShapeSet.from_shapes([Rect((0.0, 110.0), (5000.0, 10.0))], [])  # wall face at y = 100
    states = run({"w"}, 50, yaw=45.0, obstacles=[wall])
    ys = np.array([s.feet_cm[1] for s in states])
    assert ys.max() <= 100.0 - P.radius_cm + 1e-6
    # once against the wall, the along-wall component is kept: x advances at walk * cos(45)
    last = states[-10:]
    dx = np.diff([s.feet_cm[0] for s in last])
    np.testing.assert_allclose(dx, P.walk_cm_s * DT * math.cos(math.radians(45.0)), atol=1e-6)
    assert all(s.collision for s in last) and all(s.blocked_by == {"static"} for s in last)
    assert not states[1].collision


def test_head_on_wall_blocks_completely():
    wall = ShapeSet.from_shapes([Rect((100.0, 0.0), (10.0, 500.0))], [])
    states = run({"w"}, 30, obstacles=[wall])
    assert states[-1].feet_cm[0] == pytest.approx(90.0 - P.radius_cm, abs=1e-6)
    assert states[-1].collision and states[-2].collision


def test_no_tunnelling_through_thin_walls_at_low_fps():
    wall = ShapeSet.from_shapes([Rect((200.0, 0.0), (2.0, 500.0))], [])
    states = run({"w", "shift"}, 6, obstacles=[wall], dt=0.5)  # 300 cm per step
    assert all(s.feet_cm[0] <= 198.0 - P.radius_cm + 1e-6 for s in states)


def test_pushed_out_when_something_moves_into_the_agent():
    car = ShapeSet.from_shapes([Rect((20.0, 0.0), (50.0, 50.0))], [], kind="vehicle")
    res = move_circle(np.zeros(2), np.zeros(2), 30.0, [car])
    assert res.blocked and res.blocked_by == {"vehicle"}
    assert car.signed_distance(res.end_cm[None])[0] >= 30.0 - 1e-6


shapes_strategy = st.one_of(
    st.builds(lambda x, y, hx, hy, yaw: Rect((x, y), (hx, hy), yaw),
              st.floats(-300, 300), st.floats(-300, 300), st.floats(5, 200), st.floats(5, 200), st.floats(-180, 180)),
    st.builds(lambda x, y, r: Circle((x, y), r), st.floats(-300, 300), st.floats(-300, 300), st.floats(5, 150)),
)


@settings(max_examples=300, deadline=None)
@given(shapes_strategy, st.floats(-600, 600), st.floats(-600, 600))
def test_moves_never_end_inside_an_obstacle(shape, dx, dy):
    ss = ShapeSet.from_shapes([shape] if isinstance(shape, Rect) else [], [shape] if isinstance(shape, Circle) else [])
    start = np.array([-900.0, -900.0])
    if ss.signed_distance(start[None])[0] < 30.0:
        return
    res = move_circle(start, np.array([dx, dy]) + (900.0, 900.0), 30.0, [ss])
    assert ss.signed_distance(res.end_cm[None])[0] >= 30.0 - 1e-6
    free = np.linalg.norm(res.end_cm - start - (np.array([dx, dy]) + 900.0)) <= 1e-6
    assert res.blocked != free


def test_raycast_distances():
    ss = ShapeSet.from_shapes([Rect((500.0, 0.0), (10.0, 100.0))], [Circle((0.0, 300.0), 50.0)])
    d = ss.raycast(np.zeros(2), np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]), 1000.0)
    np.testing.assert_allclose(d, [490.0, 250.0, 1000.0], atol=1e-9)
    rot = ShapeSet.from_shapes([Rect((300.0, 0.0), (50.0, 50.0), 45.0)], [])
    assert rot.raycast(np.zeros(2), np.array([[1.0, 0.0]]), 1000.0)[0] == pytest.approx(300.0 - 50.0 * math.sqrt(2))
