"""The recording schema: the simulator writes what the mod writes; scenario ranges and header checks."""

from __future__ import annotations

import json

import jsonschema
import pytest

from gta_bridge.recording import CSV_COLUMNS, RecordingError, read_recording
from gta_bridge.scenario import ScenarioError, limits, load_schema, validate_scenario

from .conftest import copy_recording


def validator() -> jsonschema.Draft202012Validator:
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def assert_recording_matches_schema(session_dir) -> int:
    """Every line of behaviour.jsonl validates; ticks.csv has the schema's columns; returns the tick count."""
    v = validator()
    lines = (session_dir / "behaviour.jsonl").read_text().splitlines()
    for i, line in enumerate(lines, start=1):
        errs = sorted(v.iter_errors(json.loads(line)), key=str)
        assert not errs, f"line {i}: {errs[0].message}"
    assert json.loads(lines[0])["record"] == "header" and json.loads(lines[-1])["record"] == "footer"
    csv_lines = (session_dir / "ticks.csv").read_text().splitlines()
    assert tuple(csv_lines[0].split(",")) == CSV_COLUMNS
    assert len(csv_lines) - 1 == len(lines) - 2
    return len(lines) - 2


def test_simulator_output_validates_against_the_schema(sim_vfr):
    n = assert_recording_matches_schema(sim_vfr.directory)
    rec = read_recording(sim_vfr.directory)
    assert len(rec.ticks) == n and not rec.rejects and not rec.warnings


def test_scenario_limits_come_from_the_schema():
    lim = limits()
    assert lim.vehicle_density == (0.1, 2.0) and lim.ped_density == (0.2, 1.5)
    assert lim.time_of_day_h == (0.0, 24.0)
    assert "extrasunny" in lim.weathers and "thunder" in lim.weathers


def good_scenario(**over):
    d = {"name": "s1", "seed": 1, "weather": "clear", "time_of_day_h": 8.5, "vehicle_density": 1.0,
         "ped_density": 0.5, "behaviour": "drive_wander", "duration_s": 60,
         "camera": {"view": "first_person", "offset_m": [0, 0.5, 0.6], "rotation_offset_deg": [0, 0, 0],
                    "fov_deg": 60}}
    d.update(over)
    return d


@pytest.mark.parametrize("key,value,expect", [
    ("vehicle_density", 2.5, "scenario.vehicle_density: 2.5 is outside the allowed range [0.1, 2]"),
    ("vehicle_density", 0.05, "[0.1, 2]"),
    ("ped_density", 0.1, "scenario.ped_density: 0.1 is outside the allowed range [0.2, 1.5]"),
    ("ped_density", 1.6, "[0.2, 1.5]"),
    ("time_of_day_h", 24.0, "scenario.time_of_day_h: 24.0 is outside the allowed range [0, 24) hours"),
    ("weather", "sunny", "scenario.weather: 'sunny' is not a GTA V weather (allowed: extrasunny, clear"),
    ("behaviour", "fly", "scenario.behaviour: 'fly' is not a behaviour"),
    ("speed", 3, "scenario.speed: unknown key"),
])
def test_out_of_range_scenarios_are_rejected_with_the_range(key, value, expect):
    assert validate_scenario(good_scenario()).vehicle_density == 1.0
    with pytest.raises(ScenarioError) as ei:
        validate_scenario(good_scenario(**{key: value}))
    assert expect in str(ei.value)


def test_every_problem_is_listed():
    with pytest.raises(ScenarioError) as ei:
        validate_scenario(good_scenario(vehicle_density=9, ped_density=9, weather="x"))
    assert len(ei.value.problems) == 3


def _edit_header(session, **changes):
    lines = (session / "behaviour.jsonl").read_text().splitlines(keepends=True)
    head = json.loads(lines[0])
    for k, v in changes.items():
        if k == "scenario":
            head["scenario"].update(v)
        else:
            head[k] = v
    lines[0] = json.dumps(head) + "\n"
    (session / "behaviour.jsonl").write_text("".join(lines))


def test_unknown_schema_version_is_an_error_naming_the_file(sim_vfr, tmp_path):
    s = copy_recording(sim_vfr.directory, tmp_path / "rec")
    _edit_header(s, version=2)
    with pytest.raises(RecordingError, match=r"behaviour.jsonl:1: unknown schema version 2 .*reads version 1"):
        read_recording(s)


def test_out_of_range_scenario_in_a_header_names_the_file_and_range(sim_vfr, tmp_path):
    s = copy_recording(sim_vfr.directory, tmp_path / "rec")
    _edit_header(s, scenario={"vehicle_density": 3.0})
    with pytest.raises(ScenarioError, match=r"(?s)behaviour.jsonl:1: .*vehicle_density: 3.0 is outside the allowed range "
                                            r"\[0.1, 2\]"):
        read_recording(s)
