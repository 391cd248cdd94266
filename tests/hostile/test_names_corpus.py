"""Safe names: the one check (`capture.check_name`) and traversal through the path options that take names."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from capture.names import MAX_NAME_LEN, UnsafeNameError, check_name, name_problem, slug
from tests.hostile.harness import Spec, check, copy

HOSTILE = ["..", ".", "../x", "a/../../b", "/etc/passwd", "a\\b", "a\x00b", ".hidden", "", "x" * (MAX_NAME_LEN + 1),
           "-rf", "a b", "é", "a..b", "CON/", "\n"]


@pytest.mark.parametrize("name", HOSTILE, ids=[repr(n)[:20] for n in HOSTILE])
def test_hostile_names_are_refused_with_the_reason(name):
    with pytest.raises(UnsafeNameError, match=r"episode id .* is not a safe name: "):
        check_name(name, "episode id")


@settings(max_examples=300, deadline=None, database=None)
@given(st.text(max_size=40) | st.sampled_from(HOSTILE))
def test_an_accepted_name_stays_in_its_folder_and_slug_is_always_accepted(text):
    root = Path("/srv/work/rejects")
    if name_problem(text) is None:
        p = (root / text).resolve()
        assert p.parent == root.resolve() and p.name == text
    s = slug(text)
    assert name_problem(s) is None and (root / s).resolve().parent == root.resolve()


def _pipeline(ws: Path, doc: dict) -> Path:
    p = ws / "in" / "pipeline.yaml"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(yaml.safe_dump({"workdir": str(ws / "work"), **doc}))
    return p


# names given in settings that become folders: refused before anything runs (exit 2, the key named)
PATH_OPTION_CASES = [
    ("curate-dataset-traversal", ["curate"], {"curate": {"dataset": "../../escaped"}},
     r"curate\.dataset: '\.\./\.\./escaped' is not allowed; expected a safe name .*: it contains a path separator"),
    ("curate-dataset-dotdot", ["curate"], {"curate": {"dataset": ".."}}, r"curate\.dataset: '\.\.' is not allowed"),
    ("curate-dataset-nul", ["curate"], {"curate": {"dataset": "a\x00b"}}, r"curate\.dataset: .* contains a NUL byte"),
    ("train-dataset-dotdot", ["run", "--stages", "train"], {"train": {"dataset": ".."}}, r"train\.dataset"),
    ("train-dataset-traversal", ["run", "--stages", "train"], {"train": {"dataset": "../../../etc"}}, r"train\.dataset"),
]


@pytest.mark.parametrize("case", PATH_OPTION_CASES, ids=[c[0] for c in PATH_OPTION_CASES])
def test_names_in_settings(case, tmp_path, capsys, caplog):
    _, verb, doc, expect = case
    cfg = _pipeline(tmp_path, doc)
    argv = [verb[0], cfg, *verb[1:]]
    check(Spec(argv, 2, [expect], inputs=[cfg]), tmp_path, capsys, caplog)
    assert not (tmp_path / "work").exists()


def test_sekai_clip_names_that_look_like_paths_import_into_safe_folders(tmp_path, sekai_src, capsys, caplog):
    src = copy(sekai_src, tmp_path / "in" / "sekai")
    for stem in ("..evil_0_19", "a..b_0_19"):
        (src / f"{stem}.mp4").write_bytes((src / "good_0_19.mp4").read_bytes())
        (src / f"{stem}.npz").write_bytes((src / "good_0_19.npz").read_bytes())
    eps = tmp_path / "work" / "episodes"
    check(Spec(["import", "sekai", src, "--out", eps], 0, [r"import sekai: 3 episode\(s\) written, 0 already there, 0 failed"], inputs=[src],
               outputs=[tmp_path / "work"]), tmp_path, capsys, caplog)
    assert sorted(p.name for p in eps.iterdir()) == ["sekai-a_b-s0000000000-i00019", "sekai-evil-s0000000000-i00019",
                                                     "sekai-good-s0000000000-i00019"]
