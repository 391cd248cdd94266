"""The bad-input corpus harness: run a verb in-process on a hostile input and check what a user would see.

Every case asserts, through :func:`check`: the exit code; that the output names the file (or key) and the
problem (regular expressions); that no traceback reached the user (neither printed nor logged); that the
inputs are byte-identical afterwards; and that nothing was written outside the folders the verb may write to
(the case's workspace is snapshotted before and after, and so is the folder around it).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from playmill.cli import main


@dataclass
class Spec:
    """One corpus case, ready to run. ``argv``: the verb's arguments; ``code``: the exit code; ``expect``:
    regular expressions the output (stdout + stderr) must all match; ``inputs``: files or folders that must
    not change; ``outputs``: where the verb may write; ``after``: further checks (e.g. a valid sibling was
    imported)."""

    argv: Sequence[object]
    code: int
    expect: Sequence[str]
    inputs: Sequence[Path]
    outputs: Sequence[Path] = ()
    after: Callable[["Run"], None] | None = None


@dataclass
class Run:
    code: int
    out: str
    err: str
    records: list = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.out + self.err


def digest(paths: Sequence[Path]) -> dict[str, str]:
    """sha256 of every file under ``paths`` (files or folders), by path."""
    out: dict[str, str] = {}
    for p in paths:
        files = [p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file() and not q.is_symlink())
        for f in files:
            out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def tree(root: Path) -> set[str]:
    """Every path under ``root`` (files and folders)."""
    return {str(p) for p in root.rglob("*")}


def run_cli(argv: Sequence[object], capsys, caplog) -> Run:
    """``playmill.cli.main(argv)`` in this process: exit code, stdout, stderr and the log records."""
    caplog.clear()
    with caplog.at_level(logging.INFO):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as e:  # argparse usage errors
            code = e.code if isinstance(e.code, int) else 2
    cap = capsys.readouterr()
    return Run(code, cap.out, cap.err, list(caplog.records))


def check(spec: Spec, root: Path, capsys, caplog) -> Run:
    """Run ``spec`` inside the workspace ``root`` and assert the corpus contract (module docstring)."""
    before_in = digest(spec.inputs)
    before_tree = tree(root)
    around = set(os.listdir(root.parent))
    r = run_cli(spec.argv, capsys, caplog)
    shown = f"argv {list(map(str, spec.argv))}\nexit {r.code}\nstdout:\n{r.out}\nstderr:\n{r.err}"
    assert r.code == spec.code, shown
    for pat in spec.expect:
        assert re.search(pat, r.text), f"expected /{pat}/ in the output\n{shown}"
    assert "Traceback" not in r.text, shown
    logged = [rec for rec in r.records if rec.exc_info]
    assert not logged, f"a traceback was logged: {logged[0].getMessage()}\n{shown}"
    assert digest(spec.inputs) == before_in, f"an input changed\n{shown}"
    allowed = [str(Path(o)) for o in spec.outputs]
    new = sorted(p for p in tree(root) - before_tree
                 if not any(p == a or p.startswith(a + os.sep) for a in allowed))
    assert not new, f"written outside the output folders: {new[:5]}\n{shown}"
    assert set(os.listdir(root.parent)) == around, f"written next to the workspace\n{shown}"
    if spec.after is not None:
        spec.after(r)
    return r


def copy(src: Path, dst: Path) -> Path:
    """A writable copy of a material (file or folder) at ``dst``."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copy2(src, dst)
    return dst


def flip_byte(path: Path, offset: int) -> None:
    """Invert one byte of ``path`` (a negative offset counts from the end)."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: Path, keep: float = 0.5) -> None:
    """Keep the first ``keep`` fraction of ``path``'s bytes."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def name_of(path: Path) -> str:
    """A regular expression for a path's file name (what an error must mention)."""
    return re.escape(path.name)


def set_cell(lines: list[str], row: int, column: str, value: str) -> list[str]:
    """CSV lines (header first) with data row ``row`` (0-based), column ``column`` set to ``value``."""
    header = lines[0].split(",")
    cells = lines[row + 1].split(",")
    cells[header.index(column)] = value
    lines[row + 1] = ",".join(cells)
    return lines
