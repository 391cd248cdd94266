"""Safe names: the one check that every name coming from an input passes before it becomes part of a path.

Episode, session, scene, level, recording, dataset and mapping ids end up as folder and file names
(``<workdir>/episodes/<episode_id>/``, ``<workdir>/rejects/<source>-<name>.jsonl``, ``shards/<dataset>/``).
A name read from a file or given as an option could otherwise say ``../../x`` and write outside its folder.

:func:`check_name` accepts 1 to :data:`MAX_NAME_LEN` characters from ``A-Z a-z 0-9 _ - .``, starting with a
letter, digit or ``_``, without ``..``: no separator, no NUL, no hidden or relative name can pass. It raises
:class:`UnsafeNameError` naming what the name is and why it was refused; the caller quarantines the item.
:func:`slug` derives a safe name from free text (a folder name, a level name) where refusing is not an
option, e.g. to name the quarantine file of an input whose own id was refused.
"""

from __future__ import annotations

import re

from capture.errors import InputError

#: Longest accepted name. Leaves room under the usual 255-byte file-name limit for the writers' temporary
#: names (``.tmp-<name>-<pid>-<hex>``) and suffixes.
MAX_NAME_LEN = 160
_ALLOWED = "letters, digits, '_', '-' and '.'"
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_BAD_RUN_RE = re.compile(r"[^A-Za-z0-9_.-]+")


class UnsafeNameError(InputError):
    """A name that must not become part of a path; the message says which name and why."""


def name_problem(name: object, max_len: int = MAX_NAME_LEN) -> str | None:
    """Why ``name`` is not a safe path component, or None when it is (see the module docstring)."""
    if not isinstance(name, str):
        return f"must be a string, got {type(name).__name__}"
    if not name:
        return "is empty"
    if "\x00" in name:
        return "contains a NUL byte"
    if "/" in name or "\\" in name:
        return "contains a path separator"
    if ".." in name:
        return "contains '..'"
    if name.startswith("."):
        return "starts with '.' (a hidden or relative name)"
    if len(name) > max_len:
        return f"is {len(name)} characters long (at most {max_len})"
    bad = _BAD_RUN_RE.search(name)
    if bad is not None:
        return f"contains {bad.group(0)[0]!r} (allowed: {_ALLOWED})"
    if not _NAME_RE.match(name):
        return f"starts with {name[0]!r} (the first character must be a letter, a digit or '_')"
    return None


def check_name(name: object, what: str = "name", max_len: int = MAX_NAME_LEN) -> str:
    """Return ``name`` when it is a safe path component, else raise :class:`UnsafeNameError`.

    ``what`` says where the name comes from, e.g. ``"behaviour.jsonl:1 session_id"``; the message reads
    ``<what> '<name>' is not a safe name: <why>``.
    """
    why = name_problem(name, max_len)
    if why is not None:
        shown = repr(name) if not isinstance(name, str) or len(name) <= 80 else repr(name[:77] + "...")
        raise UnsafeNameError(f"{what} {shown} is not a safe name: {why}; use 1-{max_len} {_ALLOWED}, "
                              "without '..'")
    return name  # type: ignore[return-value]


def slug(text: object, fallback: str = "unnamed", max_len: int = 64) -> str:
    """A safe name derived from free text: runs of other characters become ``_``, ``..`` collapses, leading
    and trailing ``._-`` go, cut to ``max_len``; ``fallback`` (itself checked) when nothing is left.
    Example: ``slug("a/../../ESCAPED")`` is ``"a_._._ESCAPED"``."""
    s = _BAD_RUN_RE.sub("_", str(text))
    s = re.sub(r"\.{2,}", ".", s).strip("._-")[:max_len].strip("._-")
    return s if s and name_problem(s, max_len) is None else check_name(fallback, "fallback name", max_len)
