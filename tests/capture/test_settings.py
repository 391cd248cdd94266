"""capture.settings: one way to declare and check a config; messages name the key, the value and what is allowed."""

from __future__ import annotations

import dataclasses
from typing import Literal

import pytest
from hypothesis import given, settings as hsettings, strategies as st
from pydantic import model_validator

from capture.settings import (ConfigError, Field, Frames1p4k, Invalid, apply_overrides, describe, dump, from_preset,
                              merge, parse_set, settings, validate)


@settings
class Span:
    min: float = Field(description="lowest")
    max: float = Field(description="highest")

    @model_validator(mode="after")
    def _ordered(self) -> "Span":
        if self.min > self.max:
            raise Invalid("", {"min": self.min, "max": self.max}, "min <= max")
        return self


@settings
class Inner:
    lr: float = Field(1e-3, gt=0, le=1, description="learning rate")
    steps: int = Field(3, ge=1, description="optimizer steps")
    scenes: tuple[Literal["city", "park"], ...] = Field(("city",), min_length=1, description="scene families")
    density: float | tuple[float, ...] | Span = Field(0.5, description="a value, a list or {min, max}")
    frames: Frames1p4k = Field(17, description="frames per clip")
    cap: int | None = Field(None, ge=2, description="an optional cap")
    flag: bool = Field(False, description="a switch")

    @model_validator(mode="after")
    def _rule(self) -> "Inner":
        if self.steps > 10 and self.lr > 0.5:
            raise Invalid("steps", self.steps, "at most 10 when lr > 0.5")
        return self


@settings
class Outer:
    inner: Inner = Field(default_factory=Inner, description="the inner section")
    seed: int = Field(0, ge=0, description="base seed")


def problems(doc, **kw):
    with pytest.raises(ConfigError) as info:
        validate(Outer, doc, "p.yaml", **kw)
    return info.value.problems


def test_every_problem_at_once_with_key_value_allowed_and_doc():
    probs = problems({"inner": {"lr": "fast", "steps": 0, "scenes": ["moon"], "frames": 16, "cap": 1,
                                "lrr": 1}, "sed": 3})
    assert "inner.lr: 'fast' is not allowed; expected a number in (0, 1] (learning rate)" in probs
    assert "inner.steps: 0 is not allowed; expected an integer >= 1 (optimizer steps)" in probs
    assert "inner.scenes[0]: 'moon' is not allowed; expected one of city, park" in probs
    assert any(p.startswith("inner.frames: 16 is not allowed; expected 1 + 4k frames") for p in probs)
    assert "inner.cap: 1 is not allowed; expected an integer >= 2 or null (an optional cap)" in probs
    assert any(p.startswith("inner.lrr: unknown key; did you mean lr? (allowed here: lr, steps,") for p in probs)
    assert any(p.startswith("sed: unknown key; did you mean seed?") for p in probs)
    assert len(probs) == 7


def test_a_rule_between_keys_names_its_key():
    assert problems({"inner": {"steps": 11, "lr": 0.9}}) == ["inner.steps: 11 is not allowed; expected at most 10 "
                                                             "when lr > 0.5"]
    assert problems({"inner": {"density": {"min": 3, "max": 1}}}) == [
        "inner.density: {'min': 3.0, 'max': 1.0} is not allowed; expected min <= max"]
    assert problems({"inner": {"density": {"min": 1}}}) == ["inner.density.max: missing; expected a number"]


def test_numbers_yaml_reads_as_strings_are_numbers_and_booleans_are_not():
    cfg = validate(Outer, {"inner": {"lr": "1e-4", "steps": "2e1"}})
    assert cfg.inner.lr == 1e-4 and cfg.inner.steps == 20
    assert sorted(problems({"inner": {"steps": True, "lr": False}})) == [
        "inner.lr: False is not allowed; expected a number in (0, 1]",
        "inner.steps: True is not allowed; expected an integer >= 1"]
    assert validate(Outer, {"inner": {"flag": True, "scenes": "park"}}).inner.scenes == ("park",)  # one -> a list


@hsettings(max_examples=60, deadline=None)
@given(st.floats(min_value=1e-12, max_value=1.0, allow_nan=False))
def test_any_number_written_as_text_reads_as_that_number(x):
    assert validate(Inner, {"lr": repr(x)}).lr == x


def test_unknown_top_level_key_suggests_the_section_that_has_it():
    (msg,) = problems({"steps": 3})
    assert msg.startswith("steps: unknown key; did you mean inner.steps?")
    assert problems([1, 2]) == ["(top level): [1, 2] is not allowed; expected a mapping of inner, seed"]


def test_overrides_say_which_flag_set_the_bad_key():
    doc = apply_overrides({"inner": {"steps": 2}}, parse_set(["inner.lr=fast", "inner.scenes=[park, city]"]))
    assert doc == {"inner": {"steps": 2, "lr": "fast", "scenes": ["park", "city"]}}
    err = str(pytest.raises(ConfigError, validate, Outer, doc, "p.yaml",
                            overrides={"inner.lr": "--set inner.lr=fast"}).value)
    assert err.startswith("--set inner.lr=fast: inner.lr: 'fast' is not allowed")
    with pytest.raises(ConfigError, match="inner: expected SECTION.KEY=VALUE"):
        parse_set(["inner"])
    with pytest.raises(ConfigError, match=r"inner.scenes=\[a: the value is not valid YAML"):
        parse_set(["inner.scenes=[a"])
    assert parse_set(["a.b=", "a.c={x: 1}", "a.d=true"]) == {"a.b": None, "a.c": {"x": 1}, "a.d": True}


def test_dump_loads_back_and_presets_fill_unset_keys():
    cfg = validate(Outer, {"inner": {"density": [0.1, 0.2], "cap": 4}})
    assert validate(Outer, dump(cfg)) == cfg and dump(cfg)["inner"]["density"] == [0.1, 0.2]
    assert Outer.from_dict(cfg.to_dict()) == cfg
    presets = {"small": Inner(steps=2), "big": {"steps": 9, "lr": 0.1}}
    assert from_preset(Inner, presets, "big", {"lr": 0.2}) == Inner(steps=9, lr=0.2)
    assert from_preset(Inner, presets, "small").steps == 2
    with pytest.raises(ConfigError, match="preset: 'huge' is not allowed; expected one of small, big"):
        from_preset(Inner, presets, "huge")
    assert merge({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}, "d": 4}) == {"a": {"b": 1, "c": 3}, "d": 4}


def test_configs_stay_frozen_dataclasses_that_check_on_replace():
    cfg = Inner()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.steps = 5  # type: ignore[misc]
    assert dataclasses.replace(cfg, steps=5).steps == 5
    with pytest.raises(ValueError):
        dataclasses.replace(cfg, steps=0)


def test_describe_says_what_is_allowed_in_words():
    from typing import Annotated

    assert describe(Annotated[int, Field(ge=2, le=8)]) == "an integer in [2, 8]"
    assert describe(Annotated[float, Field(gt=0)]) == "a number > 0"
    assert describe(Annotated[int, Field(ge=16, multiple_of=2)]) == "an even integer >= 16"
    assert describe(tuple[Literal["a", "b"], ...]) == "a list of values from a, b"
    assert describe(bool | None) == "true or false or null"
    assert describe(Span) == "a mapping with keys min, max"
