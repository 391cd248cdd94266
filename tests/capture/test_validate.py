"""The validator: one corruption of a valid episode per problem kind, with the file, row and column reported."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from capture.episode import EpisodeError, read_episode, sha256_file
from capture.validate import Problem, validate_episode, validate_paths
from capture.video import ffmpeg_exe
from tests.capture.test_episode import write_episode

N = 16


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    path, _, _ = write_episode(tmp_path_factory.mktemp("pristine"), n=N)
    assert validate_episode(path) == []
    return path


@pytest.fixture
def ep(pristine, tmp_path) -> Path:
    """A fresh copy of the valid episode, to corrupt."""
    dst = tmp_path / pristine.name
    shutil.copytree(pristine, dst)
    return dst


# -- helpers to corrupt one thing


def csv_table(ep: Path) -> tuple[list[str], list[list[str]]]:
    lines = (ep / "actions.csv").read_text().splitlines()
    return lines[0].split(","), [ln.split(",") for ln in lines[1:]]


def write_table(ep: Path, header: list[str], rows: list[list[str]]) -> None:
    (ep / "actions.csv").write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n")


def set_cell(ep: Path, row: int, column: str, value: str) -> None:
    header, rows = csv_table(ep)
    rows[row][header.index(column)] = value
    write_table(ep, header, rows)


def edit_meta(ep: Path, **changes) -> None:
    meta = json.loads((ep / "meta.json").read_text())
    for k, v in changes.items():
        if v is ...:
            del meta[k]
        else:
            meta[k] = v
    (ep / "meta.json").write_text(json.dumps(meta))


def only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, "\n".join(map(str, problems))
    return problems[0]


def find(problems: list[Problem], file: str, row, column, text: str) -> Problem:
    for p in problems:
        if p.file.name == file and p.row == row and p.column == column and text in p.message:
            return p
    raise AssertionError(f"no problem {file} row {row} column {column} {text!r} in:\n" + "\n".join(map(str, problems)))


# -- files and meta.json


@pytest.mark.parametrize("name", ["meta.json", "actions.csv", "video.mp4"])
def test_missing_file(ep, name):
    (ep / name).unlink()
    problems = validate_episode(ep)
    p = find(problems, name, None, None, "missing file")
    assert p.file == ep / name
    if name != "meta.json":
        assert problems == [p]


def test_meta_malformed_json(ep):
    (ep / "meta.json").write_text('{"schema": "playmill.episode/1",\n  "fps": }')
    p = only(validate_episode(ep))
    assert p.file == ep / "meta.json" and "malformed JSON at line 2" in p.message


def test_meta_wrong_schema(ep):
    edit_meta(ep, schema="playmill.episode/0")
    p = only(validate_episode(ep))
    assert (p.file.name, p.column) == ("meta.json", "schema") and "expected 'playmill.episode/1'" in p.message
    assert str(p) == f"{ep}/meta.json field schema: is 'playmill.episode/0', expected 'playmill.episode/1'"


def test_meta_missing_and_wrongly_typed_fields_all_reported(ep):
    edit_meta(ep, scene=..., fps="20", seed=1.5, width=0, frame_count=True, action_space={"keys": ["W"]},
              created_utc="yesterday", video_sha256="xyz", source="quake", config=[])
    problems = validate_episode(ep, check_video=False)
    for field, text in [("scene", "missing field"), ("fps", "positive finite number"), ("seed", "integer"),
                        ("width", "positive integer"), ("frame_count", "positive integer"),
                        ("action_space", "lower-case"), ("created_utc", "ISO 8601"),
                        ("video_sha256", "hex"), ("source", "not one of"), ("config", "an object")]:
        find(problems, "meta.json", None, field, text)


def test_meta_odd_size_and_id_mismatch(ep):
    edit_meta(ep, height=25, episode_id="someone-else")
    problems = validate_episode(ep)
    find(problems, "meta.json", None, "height", "must be even")
    find(problems, "meta.json", None, "episode_id", "folder is named")


# -- actions.csv structure


def test_csv_unknown_column(ep):
    header, rows = csv_table(ep)
    header[header.index("speed")] = "velocity"
    write_table(ep, header, rows)
    problems = validate_episode(ep)
    find(problems, "actions.csv", None, "velocity", "unknown column")
    find(problems, "actions.csv", None, "speed", "missing column")


def test_csv_unknown_key_column(ep):
    header, rows = csv_table(ep)
    header[header.index("key_space")] = "key_jump"
    write_table(ep, header, rows)
    problems = validate_episode(ep)
    find(problems, "actions.csv", None, "key_jump", "not in meta.json action_space")
    find(problems, "actions.csv", None, "key_space", "missing column")


def test_csv_missing_column(ep):
    header, rows = csv_table(ep)
    j = header.index("qz")
    write_table(ep, header[:j] + header[j + 1:], [r[:j] + r[j + 1:] for r in rows])
    p = only(validate_episode(ep))
    assert (p.file.name, p.row, p.column, p.message) == ("actions.csv", None, "qz", "missing column")


def test_csv_out_of_order_columns(ep):
    header, rows = csv_table(ep)
    i, j = header.index("x"), header.index("y")
    for r in [header, *rows]:
        r[i], r[j] = r[j], r[i]
    write_table(ep, header, rows)
    problems = validate_episode(ep)
    assert {p.column for p in problems} == {"x", "y"}
    find(problems, "actions.csv", None, "y", "out of order")


def test_csv_extra_before_base_columns(ep):
    header, rows = csv_table(ep)
    k = header.index("sandbox_npc_count")
    order = [k] + [i for i in range(len(header)) if i != k]
    write_table(ep, [header[i] for i in order], [[r[i] for i in order] for r in rows])
    find(validate_episode(ep), "actions.csv", None, "sandbox_npc_count", "must come after 'collision'")


def test_csv_ragged_row(ep):
    lines = (ep / "actions.csv").read_text().splitlines()
    lines[4] += ",7"  # data row 3
    (ep / "actions.csv").write_text("\n".join(lines) + "\n")
    p = only(validate_episode(ep))
    assert (p.row, p.column) == (3, None) and "fields, the header has" in p.message


def test_csv_unreadable(ep):
    (ep / "actions.csv").write_bytes(b"frame,t\n\xff\xfe\x00garbage\n")
    p = only(validate_episode(ep))
    assert p.file == ep / "actions.csv" and "unreadable" in p.message


def test_csv_empty_file(ep):
    (ep / "actions.csv").write_text("")
    assert "no header" in only(validate_episode(ep)).message


# -- actions.csv values


def test_non_numeric_cell(ep):
    set_cell(ep, 3, "x", "abc")
    p = only(validate_episode(ep))
    assert (p.file.name, p.row, p.column, p.message) == ("actions.csv", 3, "x", "not a number: 'abc'")


def test_empty_cell_outside_optional_columns(ep):
    set_cell(ep, 4, "y", "")
    p = only(validate_episode(ep))
    assert (p.row, p.column) == (4, "y") and "empty cell" in p.message


def test_empty_cells_allowed_in_mouse_counts_and_extras(ep):
    header, rows = csv_table(ep)
    for r in rows:
        r[header.index("mouse_dx")] = r[header.index("mouse_dy")] = r[header.index("sandbox_npc_count")] = ""
    write_table(ep, header, rows)
    assert validate_episode(ep, check_video=False) == []


def test_row_count_differs_from_meta(ep):
    header, rows = csv_table(ep)
    write_table(ep, header, rows[:-1])
    p = only(validate_episode(ep))
    assert p.file.name == "actions.csv" and f"{N - 1} rows, but meta.json frame_count is {N}" in p.message


def test_frame_column_not_a_range(ep):
    set_cell(ep, 5, "frame", "7")
    p = only(validate_episode(ep))
    assert (p.row, p.column) == (5, "frame") and "frame is 7, expected 5" in p.message


def test_t_must_start_at_zero(ep):
    set_cell(ep, 0, "t", "0.001")
    p = only(validate_episode(ep))
    assert (p.row, p.column) == (0, "t") and "start at 0" in p.message


def test_t_must_strictly_increase(ep):
    header, rows = csv_table(ep)
    set_cell(ep, 6, "t", rows[5][header.index("t")])
    p = only(validate_episode(ep))
    assert (p.row, p.column) == (6, "t") and "strictly increase" in p.message


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_nan_and_inf(ep, value):
    set_cell(ep, 2, "vx", value)
    set_cell(ep, 3, "mouse_dx", value)  # also in a column where empty cells are allowed
    problems = validate_episode(ep)
    assert len(problems) == 2
    find(problems, "actions.csv", 2, "vx", "is not finite")
    find(problems, "actions.csv", 3, "mouse_dx", "is not finite")


def test_non_unit_quaternion(ep):
    header, rows = csv_table(ep)
    q = np.array([float(rows[12][header.index(c)]) for c in ("qw", "qx", "qy", "qz")])
    for c, v in zip(("qw", "qx", "qy", "qz"), 0.9 * q):
        set_cell(ep, 12, c, repr(float(v)))
    p = only(validate_episode(ep, check_video=False))
    assert str(p) == f"{ep}/actions.csv row 12 column qw: quaternion norm 0.9 is not 1 (tolerance 1e-6)"


def test_keys_and_collision_must_be_0_or_1(ep):
    set_cell(ep, 1, "key_w", "2")
    set_cell(ep, 9, "collision", "0.5")
    problems = validate_episode(ep)
    assert len(problems) == 2
    find(problems, "actions.csv", 1, "key_w", "2 is not 0 or 1")
    find(problems, "actions.csv", 9, "collision", "0.5 is not 0 or 1")


def test_many_bad_rows_are_summarised(ep):
    header, rows = csv_table(ep)
    for r in rows:
        r[header.index("key_a")] = "5"
    write_table(ep, header, rows)
    problems = validate_episode(ep, max_rows_per_check=3)
    assert [p.row for p in problems] == [0, 1, 2, None]
    assert f"{N - 3} more rows" in problems[-1].message and problems[-1].column == "key_a"
    assert len(validate_episode(ep, max_rows_per_check=None)) == N


def test_every_problem_is_reported_at_once(ep):
    set_cell(ep, 3, "x", "abc")
    set_cell(ep, 5, "frame", "9")
    set_cell(ep, 1, "key_w", "3")
    edit_meta(ep, schema="nope")
    problems = validate_episode(ep)
    find(problems, "actions.csv", 3, "x", "not a number")
    find(problems, "actions.csv", 5, "frame", "expected 5")
    find(problems, "actions.csv", 1, "key_w", "not 0 or 1")
    find(problems, "meta.json", None, "schema", "expected")


# -- video.mp4


def reencode(ep: Path, *args: str) -> None:
    tmp = ep / "re.mp4"
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-i", str(ep / "video.mp4"), *args,
                    str(tmp)], check=True)
    tmp.replace(ep / "video.mp4")
    edit_meta(ep, video_sha256=sha256_file(ep / "video.mp4"))


def test_video_unreadable(ep):
    (ep / "video.mp4").write_text("not a video")
    p = only(validate_episode(ep))
    assert p.file == ep / "video.mp4" and "not a valid MP4" in p.message


def test_video_truncated(ep):
    data = (ep / "video.mp4").read_bytes()
    (ep / "video.mp4").write_bytes(data[: len(data) * 2 // 3])
    p = only(validate_episode(ep))
    assert p.file.name == "video.mp4" and "truncated" in p.message


def test_video_wrong_codec(ep):
    reencode(ep, "-c:v", "mpeg4", "-pix_fmt", "yuv420p")
    p = only(validate_episode(ep))
    assert p.file.name == "video.mp4" and p.message == "codec is mpeg4, expected h264"


def test_video_wrong_pixel_format(ep):
    reencode(ep, "-c:v", "libx264", "-pix_fmt", "yuv444p")
    p = only(validate_episode(ep))
    assert p.message == "pixel format is yuv444p, expected yuv420p"


def test_video_size_frame_count_and_fps_against_meta(ep):
    edit_meta(ep, width=64, fps=25.0)
    problems = validate_episode(ep)
    assert len(problems) == 2
    find(problems, "video.mp4", None, None, "size is 32x24, meta.json says 64x24")
    find(problems, "video.mp4", None, None, "frame rate is 20 fps, meta.json fps is 25")
    reencode(ep, "-frames:v", "10", "-c:v", "libx264", "-pix_fmt", "yuv420p")
    edit_meta(ep, width=32, fps=20.0)
    problems = validate_episode(ep)
    find(problems, "video.mp4", None, None, f"has 10 frames, meta.json frame_count is {N}")


def test_video_sha256_mismatch(ep):
    edit_meta(ep, video_sha256="0" * 64)
    p = only(validate_episode(ep))
    assert p.file.name == "video.mp4" and "sha256 is" in p.message and "changed or replaced" in p.message
    assert validate_episode(ep, check_video=False) == []


# -- entry points


def test_read_episode_raises_episode_error_naming_problems(ep):
    set_cell(ep, 3, "x", "abc")
    with pytest.raises(EpisodeError) as e:
        read_episode(ep)
    assert "actions.csv row 3 column x: not a number" in str(e.value)
    assert e.value.problems[0].row == 3


def test_validate_paths(ep, tmp_path):
    folder = ep.parent
    broken = folder / "broken-episode"
    broken.mkdir()
    (folder / ".tmp-half-written-1-abc").mkdir()
    result = validate_paths([folder])
    assert list(result) == [broken, ep]
    assert result[ep] == [] and {p.file.name for p in result[broken]} == {"meta.json", "actions.csv", "video.mp4"}
    assert validate_paths([ep]) == {ep: []}
    assert validate_paths([ep / "meta.json"]) == {ep: []}
    missing = tmp_path / "nowhere"
    assert only(validate_paths([missing])[missing]).message == "does not exist"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "neither an episode folder" in only(validate_paths([empty])[empty]).message
