"""The one way playmill declares, reads and checks configuration.

Every config (a section of pipeline.yaml, an import mapping, a library's options) is a class decorated with
:func:`settings`: a frozen pydantic dataclass whose fields are the single declaration of each key: its type,
default, range (``Field`` constraints) and one-line doc (``Field`` description)::

    @settings
    class ClipConfig:
        frames: int = Field(57, ge=1, description="frames per clip, 1 + 4k (the causal VAE's rule)")

Library code uses the instances like any frozen dataclass (``dataclasses.replace``, ``asdict``).
:func:`validate` turns a parsed YAML document into a config and reports every problem at once, each with its
dotted key path, the bad value and what is allowed (from the type and the constraints), plus the key's doc::

    pipeline.yaml: collect.fps: -3 is not allowed; expected a number in (0, 240] (frames per second of the video)
    pipeline.yaml: collect.fsp: unknown key; did you mean fps? (allowed here: source, scenes, ...)

Numbers that YAML reads as strings (``1e-4``: YAML 1.1 wants a dot) are accepted where a number is expected;
``true``/``false`` are not numbers. A rule between keys raises :class:`Invalid` naming the key.
:func:`parse_set` and :func:`apply_overrides` implement ``--set section.key=value`` (values in YAML syntax).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import re
import types
from pathlib import Path
from typing import Annotated, Any, Iterable, Iterator, Literal, Mapping, Sequence, Union, get_args, get_origin

import annotated_types as at
import yaml
from pydantic import AfterValidator, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass as _pydantic_dataclass
from pydantic.fields import FieldInfo

from capture.errors import InputError, UsageError

__all__ = ["CONFIG", "ConfigError", "Field", "Frames1p4k", "InputError", "Invalid", "SafeName", "UsageError",
           "apply_overrides", "describe", "dump", "from_preset", "json_schema", "load_yaml", "merge", "parse_set",
           "settings", "validate"]

#: pydantic options of every config: unknown keys are errors, numbers must be finite.
CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False)

_NONE = type(None)


def settings(cls: type | None = None, *, frozen: bool = True):
    """Class decorator: a pydantic dataclass (frozen unless told) with :data:`CONFIG`, plus
    ``Cls.from_dict(data, source)`` (:func:`validate`) and ``obj.to_dict()`` (:func:`dump`) unless the class
    defines its own."""

    def wrap(c: type) -> type:
        out = _pydantic_dataclass(c, frozen=frozen, config=CONFIG)
        out.__init__ = _readable_init(out, out.__init__)
        if "from_dict" not in c.__dict__:
            out.from_dict = classmethod(_from_dict)
        if "to_dict" not in c.__dict__:
            out.to_dict = dump
        return out

    return wrap if cls is None else wrap(cls)


def _readable_init(cls: type, init: Any) -> Any:
    """``cls(...)`` and ``dataclasses.replace`` raise :class:`ConfigError` with the usual messages, not
    pydantic's own text."""

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            init(self, *args, **kwargs)
        except ValidationError as exc:
            data = {**dict(zip(_fields(cls), args)), **kwargs}
            problems = dict(_format_errors(cls, data, exc))
            raise ConfigError(cls.__name__, list(problems.values())) from None

    return __init__


def _from_dict(cls: type, data: Any, source: str = "<config>") -> Any:
    """The config from a mapping (a YAML section, a stored JSON); :class:`ConfigError` naming every bad key."""
    return validate(cls, data, source)


class ConfigError(UsageError):
    """A config with problems. ``problems``: one message per bad key, each starting with its dotted path (or
    with ``--set ITEM:`` when the command line set the key); ``source``: the file they come from. Exit code 2 at
    the command line."""

    def __init__(self, source: str, problems: Sequence[str]):
        self.source = str(source)
        self.problems = list(problems)
        super().__init__("\n".join(p if p.startswith("--") else f"{self.source}: {p}" for p in self.problems))


class Invalid(ValueError):
    """Raised by a config's own checks (a rule between keys): ``key`` relative to the config being checked
    (dotted; "" = the config itself), the bad ``value`` and what is ``expected``."""

    def __init__(self, key: str, value: Any, expected: str):
        self.key, self.value, self.expected = key, value, expected
        super().__init__(f"{key}: {value!r} is not allowed; expected {expected}")


def _one_plus_4k(n: int) -> int:
    if n % 4 != 1:
        raise Invalid("", n, "1 + 4k frames, e.g. 17, 33, 57 (the causal VAE compresses time by 4)")
    return n


#: A frame count of 1 + 4k (the causal VAE's rule: 1 frame, then groups of 4).
Frames1p4k = Annotated[int, Field(ge=1), AfterValidator(_one_plus_4k)]


def _safe_name(name: str) -> str:
    from capture.names import MAX_NAME_LEN, name_problem

    why = name_problem(name)
    if why is not None:
        raise Invalid("", name, f"a safe name (1-{MAX_NAME_LEN} letters, digits, '_', '-', '.'; no '..'): it "
                                f"{why}")
    return name


#: A name that becomes part of a path (a dataset folder, an episode's scene): :func:`capture.names.check_name`'s
#: rule, so it cannot lead out of its folder.
SafeName = Annotated[str, AfterValidator(_safe_name),
                     Field(json_schema_extra={"pattern": r"^(?!.*\.\.)[A-Za-z0-9_][A-Za-z0-9_.-]{0,159}$"})]


# --------------------------------------------------------------------------------------------------------
# reading and checking


@functools.lru_cache(maxsize=None)
def _adapter(cls: Any) -> TypeAdapter:
    return TypeAdapter(cls)


def validate(cls: type, data: Any, source: str = "<config>", *,
             overrides: Mapping[str, str] | None = None) -> Any:
    """``cls`` from a parsed YAML document; :class:`ConfigError` listing every problem.

    ``overrides`` maps dotted keys set on the command line to the flag that set them (``--set k=v``,
    ``--workers 0``), so a problem with such a key starts with where it came from."""
    data = {} if data is None else data
    if not isinstance(data, Mapping):
        keys = ", ".join(_fields(cls))
        raise ConfigError(source, [f"(top level): {_show(data)} is not allowed; expected a mapping of {keys}"])
    problems: dict[str, str] = {}
    data = _normalise(cls, data, (), problems)
    try:
        obj = _adapter(cls).validate_python(data)
    except ValidationError as exc:
        obj = None
        found = dict(_format_errors(cls, data, exc))
        for key, msg in found.items():  # a list with a bad item is not also "too short"
            if not any(k != key and (k.startswith(key + ".") or k.startswith(key + "[")) for k in found):
                problems.setdefault(key, msg)
    if problems:
        raise ConfigError(source, [_with_origin(k, m, overrides or {}) for k, m in problems.items()])
    return obj


def load_yaml(path: str | Path) -> Any:
    """The parsed YAML of ``path`` (safe loader); :class:`ConfigError` naming the file when it cannot be read."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), [f"cannot read the file: {getattr(exc, 'strerror', None) or exc}"]) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), [f"not valid YAML: {' '.join(str(exc).split())}"]) from None


def parse_set(items: Iterable[str] | None) -> dict[str, Any]:
    """``["train.max_steps=500", "collect.scenes=[indoor]"]`` -> ``{"train.max_steps": 500, ...}`` (values
    parsed as YAML: numbers, true/false, null, [lists], {mappings}; an empty value is null).
    :class:`ConfigError` (source ``--set``) for an item without ``=`` or with a value that is not YAML."""
    out: dict[str, Any] = {}
    problems = []
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not p for p in key.split(".")):
            problems.append(f"{item}: expected SECTION.KEY=VALUE, e.g. --set train.max_steps=500")
            continue
        try:
            out[key] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            problems.append(f"{item}: the value is not valid YAML ({str(exc).splitlines()[0]}); quote strings "
                            f"and write lists as [a, b]")
    if problems:
        raise ConfigError("--set", problems)
    return out


def apply_overrides(doc: Any, overrides: Mapping[str, Any]) -> dict:
    """A copy of the document ``doc`` with each dotted key of ``overrides`` set (missing mappings created)."""
    out = copy.deepcopy(dict(doc or {})) if isinstance(doc, Mapping) or doc is None else doc
    if not isinstance(out, dict):
        return out
    for key, value in overrides.items():
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            if not isinstance(node.get(p), dict):
                node[p] = {}
            node = node[p]
        node[parts[-1]] = value
    return out


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``over`` merged in: nested mappings merge key by key, anything else in ``over`` replaces
    (how a preset fills the keys a section does not set)."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def from_preset(cls: type, presets: Mapping[str, Any], name: str, overrides: Mapping[str, Any] | None = None,
                source: str = "<config>") -> Any:
    """``cls`` from the preset ``name`` of ``presets`` (configs or mappings) with ``overrides`` merged in;
    :class:`ConfigError` for an unknown preset or a bad key."""
    if name not in presets:
        raise ConfigError(source, [f"preset: {name!r} is not allowed; expected one of {', '.join(presets)}"])
    base = presets[name]
    return validate(cls, merge(base if isinstance(base, Mapping) else dump(base), overrides or {}), source)


def dump(obj: Any) -> Any:
    """A config as plain JSON-able data (tuples -> lists, paths -> strings): what :func:`validate` reads back."""
    return _adapter(type(obj)).dump_python(obj, mode="json")


def json_schema(cls: type) -> dict:
    """The JSON Schema of ``cls`` (with each key's doc, default and range)."""
    return _adapter(cls).json_schema()


# --------------------------------------------------------------------------------------------------------
# what is allowed, in words


def describe(tp: Any, meta: Sequence[Any] = ()) -> str:
    """What a value of type ``tp`` (with ``Field`` constraints ``meta``) may be, in words: "an integer in
    [1, 256]", "one of city, indoor, park", "a list of numbers", "a number or null"."""
    tp, meta = _unwrap(tp, meta)
    origin = get_origin(tp)
    if tp is _NONE:
        return "null"
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not _NONE]
        words = [describe(a, meta if len(args) == 1 else ()) for a in args]
        text = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]
        return text + (" or null" if _NONE in get_args(tp) else "")
    if origin is Literal:
        return "one of " + ", ".join(_plain(a) for a in get_args(tp))
    if tp is bool:
        return "true or false"
    if tp is int:
        even = any(isinstance(m, at.MultipleOf) and m.multiple_of == 2 for m in meta)
        return ("an even integer" if even else "an integer") + _range(meta)
    if tp is float:
        return "a number" + _range(meta)
    if tp is str:
        pattern = next((m.pattern for m in meta if getattr(m, "pattern", None)), None)
        return "a string" + _length(meta, "characters") + (f" matching {pattern}" if pattern else "")
    if isinstance(tp, type) and issubclass(tp, Path):
        return "a path"
    if origin in (list, tuple, set, frozenset, Sequence):
        args = [a for a in get_args(tp) if a is not Ellipsis]
        if origin is tuple and len(get_args(tp)) > 1 and Ellipsis not in get_args(tp):
            return f"a list of {len(args)}: " + ", ".join(describe(a) for a in args)
        item = describe(args[0]) if args else "values"
        return f"a{' non-empty' if _length(meta, 'items') == ' (at least one)' else ''} list of {_plural(item)}"
    if origin in (dict, Mapping):
        k, v = get_args(tp) or (str, Any)
        return f"a mapping of {describe(k)} to {describe(v)}"
    if dataclasses.is_dataclass(tp):
        return "a mapping with keys " + ", ".join(_fields(tp))
    if tp is Any:
        return "any value"
    return getattr(tp, "__name__", str(tp))


def _unwrap(tp: Any, meta: Sequence[Any]) -> tuple[Any, list]:
    meta = list(meta)
    while get_origin(tp) is not None and hasattr(tp, "__metadata__"):
        meta.extend(tp.__metadata__)
        tp = get_args(tp)[0]
    flat = []
    for m in meta:
        if isinstance(m, FieldInfo):
            flat.extend(m.metadata)
        else:
            flat.append(m)
    return tp, flat


def _plural(desc: str) -> str:
    for one, many in (("a string", "strings"), ("an integer", "integers"), ("a number", "numbers"),
                      ("one of ", "values from "), ("a path", "paths"), ("true or false", "true/false values")):
        if desc.startswith(one):
            return many + desc[len(one):]
    return f"({desc})"


def _range(meta: Sequence[Any]) -> str:
    lo = hi = None
    lo_open = hi_open = False
    for m in meta:
        for name, is_lo, opn in (("ge", True, False), ("gt", True, True), ("le", False, False), ("lt", False, True)):
            v = getattr(m, name, None)
            if v is not None and isinstance(m, (at.Ge, at.Gt, at.Le, at.Lt, at.Interval)):
                if is_lo:
                    lo, lo_open = v, opn
                else:
                    hi, hi_open = v, opn
    mult = next((m.multiple_of for m in meta if isinstance(m, at.MultipleOf)), None)
    text = ""
    if lo is not None and hi is not None:
        text = f" in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
    elif lo is not None:
        text = f" {'>' if lo_open else '>='} {lo}"
    elif hi is not None:
        text = f" {'<' if hi_open else '<='} {hi}"
    if mult == 2:
        return text
    return text + (f", a multiple of {mult}" if mult else "")


def _length(meta: Sequence[Any], unit: str) -> str:
    lo = next((m.min_length for m in meta if isinstance(m, at.MinLen)), None)
    hi = next((m.max_length for m in meta if isinstance(m, at.MaxLen)), None)
    if lo and hi:
        return f" of {lo} to {hi} {unit}"
    if lo == 1:
        return "" if unit == "characters" else " (at least one)"
    if lo:
        return f" of at least {lo} {unit}"
    return f" of at most {hi} {unit}" if hi else ""


def _plain(v: Any) -> str:
    return str(v) if isinstance(v, str) else _show(v)


def _show(v: Any) -> str:
    return repr(v)


# --------------------------------------------------------------------------------------------------------
# pydantic's errors -> one message per key


def _fields(cls: Any) -> dict[str, FieldInfo]:
    return dict(getattr(cls, "__pydantic_fields__", None) or {})


def _key(parts: Sequence[Any]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _split_key(key: str) -> list:
    """``"a.b[2].c"`` -> ``["a", "b", 2, "c"]``."""
    return [int(i) if i else name for name, i in re.findall(r"([^.\[\]]+)|\[(\d+)\]", key)]


def _raw_at(data: Any, parts: Sequence[Any]) -> Any:
    for p in parts:
        try:
            data = data[p]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _kind(v: Any) -> str:
    return "mapping" if isinstance(v, Mapping) else "list" if isinstance(v, (list, tuple)) else "scalar"


def _tag_kind(tag: str, members: Sequence[Any]) -> tuple[str, Any]:
    """Which member of a union a pydantic branch tag names: ('mapping' | 'list' | 'scalar', member type)."""
    for m in members:
        base, _ = _unwrap(m, ())
        if dataclasses.is_dataclass(base) and re.search(rf"(^|[\[, ]){re.escape(base.__name__)}\]?$", tag):
            return "mapping", m
        o = get_origin(base)
        if o in (list, tuple, set, frozenset) and tag.split("[")[0] in ("list", "tuple", "set", "frozenset"):
            return "list", m
        if o in (dict, Mapping) and tag.startswith("dict"):
            return "mapping", m
    scalars = [m for m in members if _kind_of_type(m) == "scalar"]
    return "scalar", (scalars[0] if len(scalars) == 1 else None)


def _is_tag(el: str, member: Any) -> bool:
    """Whether ``el`` is pydantic's branch tag of ``member`` rather than a key inside it."""
    base, _ = _unwrap(member, ())
    if dataclasses.is_dataclass(base):
        return el not in _fields(base)
    return get_origin(base) not in (dict, Mapping)


def _kind_of_type(tp: Any) -> str:
    base, _ = _unwrap(tp, ())
    o = get_origin(base)
    if dataclasses.is_dataclass(base) or o in (dict, Mapping):
        return "mapping"
    if o in (list, tuple, set, frozenset):
        return "list"
    return "scalar"


@dataclasses.dataclass
class _Where:
    parts: list          # the dotted path (strings and list indices)
    tp: Any              # the type expected there (None: an unknown key)
    info: FieldInfo | None
    owner: Any           # the dataclass the last key belongs to
    skip: bool = False   # the error is about a union branch that does not match the value's kind


def _locate(cls: Any, data: Any, loc: Sequence[Any]) -> _Where:
    """Follow pydantic's ``loc`` through the config classes: the key path, its type, doc and owner."""
    tp: Any = cls
    info: FieldInfo | None = None
    owner: Any = cls
    parts: list = []
    i = 0
    while i < len(loc):
        el = loc[i]
        base, _ = _unwrap(tp, [info] if info is not None else [])
        origin = get_origin(base)
        if origin in (Union, types.UnionType):
            members = [a for a in get_args(base) if a is not _NONE]
            if len(members) == 1 and (not isinstance(el, str) or not _is_tag(el, members[0])):
                tp = members[0]  # an optional value: pydantic's loc has no branch tag
                continue
            if not isinstance(el, str):
                return _Where(parts, tp, info, owner)
            kind, member = _tag_kind(el, members)
            if kind != _kind(_raw_at(data, parts)):
                return _Where(parts, tp, info, owner, skip=len(members) > 1)
            if member is None:
                return _Where(parts, tp, info, owner)
            tp, i = member, i + 1
            continue
        if dataclasses.is_dataclass(base):
            f = _fields(base)
            if isinstance(el, str) and el in f:
                owner, info, tp = base, f[el], f[el].annotation
                parts.append(el)
                i += 1
                continue
            return _Where(parts + [el], None, None, base)
        if origin in (list, tuple, set, frozenset, Sequence) and isinstance(el, int):
            args = [a for a in get_args(base) if a is not Ellipsis]
            fixed = origin is tuple and Ellipsis not in get_args(base) and len(args) > 1
            tp = (args[el] if fixed and el < len(args) else args[0]) if args else Any
            info = None
            parts.append(el)
            i += 1
            continue
        if origin in (dict, Mapping):
            args = get_args(base) or (str, Any)
            if i + 1 < len(loc) and loc[i + 1] == "[key]":
                return _Where(parts + [el], args[0], None, owner)
            tp, info = args[1], None
            parts.append(el)
            i += 1
            continue
        break
    return _Where(parts, tp, info, owner)


def _doc(info: FieldInfo | None) -> str:
    return f" ({info.description})" if info is not None and info.description else ""


def _format_errors(cls: Any, data: Any, exc: ValidationError) -> Iterator[tuple[str, str]]:
    seen: set[str] = set()
    for err in exc.errors(include_url=False):
        where = _locate(cls, data, err["loc"])
        if where.skip:
            continue
        key = _key(where.parts)
        etype = err["type"]
        error = (err.get("ctx") or {}).get("error")
        if isinstance(error, Invalid):
            full = where.parts + _split_key(error.key)
            yield _key(full), f"{_key(full)}: {_show(error.value)} is not allowed; expected {error.expected}"
            continue
        if key in seen:
            continue
        seen.add(key)
        if where.tp is None or etype in ("unexpected_keyword_argument", "extra_forbidden"):
            yield key, _unknown_key(where)
        elif etype in ("missing", "missing_argument"):
            yield key, f"{key}: missing; expected {describe(where.tp, [where.info] if where.info else [])}"
        elif etype in ("value_error", "assertion_error") and error is not None:
            yield key, f"{key}: {_show(_raw_at(data, where.parts))} is not allowed; {error}"
        else:
            value = _raw_at(data, where.parts) if where.parts else err.get("input")
            meta = [where.info] if where.info is not None else []
            yield key, f"{key}: {_show(value)} is not allowed; expected {describe(where.tp, meta)}{_doc(where.info)}"


def _unknown_key(where: _Where) -> str:
    name = str(where.parts[-1])
    allowed = list(_fields(where.owner))
    close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else ""
    if not close and len(where.parts) == 1:
        deeper = [p for p in _all_keys(where.owner) if p.endswith("." + name)]
        hint = f"; did you mean {deeper[0]}?" if deeper else ""
    return f"{_key(where.parts)}: unknown key{hint} (allowed here: {', '.join(allowed)})"


def _all_keys(cls: Any, prefix: str = "", depth: int = 0) -> Iterator[str]:
    """Every dotted key of a config class (nested configs included)."""
    for name, info in _fields(cls).items():
        path = f"{prefix}{name}"
        yield path
        base, _ = _unwrap(info.annotation, ())
        members = get_args(base) if get_origin(base) in (Union, types.UnionType) else (base,)
        for m in members:
            mb, _ = _unwrap(m, ())
            if dataclasses.is_dataclass(mb) and depth < 6:
                yield from _all_keys(mb, path + ".", depth + 1)


def _admits(tp: Any, kind: type) -> bool:
    base, _ = _unwrap(tp, ())
    if base is kind or base is Any:
        return True
    if get_origin(base) in (Union, types.UnionType):
        return any(_admits(a, kind) for a in get_args(base))
    return get_origin(base) is Literal and any(type(a) is kind for a in get_args(base))


def _as_number(text: str) -> float | None:
    try:
        v = float(text)
    except ValueError:
        return None
    return v if v == v and abs(v) != float("inf") else None


def _normalise(tp: Any, value: Any, parts: tuple, problems: dict[str, str]) -> Any:
    """``value`` with numeric strings made numbers where a number is expected (YAML 1.1 reads ``1e-4`` and
    ``2e6`` as strings) and booleans made words where a choice of words has ``off``/``on`` (or ``no``/``yes``:
    YAML 1.1 reads ``check: off`` as false); other true/false where a number or text is expected is recorded
    in ``problems`` (pydantic would read them as 1 and 0)."""
    base, _ = _unwrap(tp, ())
    origin = get_origin(base)
    if isinstance(value, bool) and origin is Literal:  # YAML 1.1 reads off/on, no/yes as booleans: take the word
        words = ("off", "no", "false") if value is False else ("on", "yes", "true")
        word = next((w for w in words if w in get_args(base)), None)
        if word is not None:
            return word
    if isinstance(value, bool):
        if not _admits(base, bool):
            problems[_key(parts)] = f"{_key(parts)}: {value!r} is not allowed; expected {describe(tp)}"
        return value
    if isinstance(value, str) and not _admits(base, str) and (_admits(base, float) or _admits(base, int)):
        num = _as_number(value)
        if num is not None and _admits(base, float):
            return num
        if num is not None and num.is_integer():
            return int(num)
        return value
    if origin in (Union, types.UnionType):
        members = [m for m in get_args(base) if m is not _NONE]
        if value is None and len(members) < len(get_args(base)):
            return value
        if len(members) == 1:
            return _normalise(members[0], value, parts, problems)
        for m in members:
            if _kind_of_type(m) == _kind(value) and _kind(value) != "scalar":
                return _normalise(m, value, parts, problems)
        return value
    if dataclasses.is_dataclass(base) and isinstance(value, Mapping):
        f = _fields(base)
        return {k: (_normalise(_annotate(f[k].annotation, f[k]), v, parts + (k,), problems) if k in f else v)
                for k, v in value.items()}
    if origin in (list, tuple, set, frozenset) and isinstance(value, (str, int, float)):
        if not (origin is tuple and Ellipsis not in get_args(base) and len(get_args(base)) > 1):
            value = [value]  # one value where a list is expected: a list of one
    if origin in (list, tuple, set, frozenset) and isinstance(value, (list, tuple)):
        args = [a for a in get_args(base) if a is not Ellipsis]
        fixed = origin is tuple and Ellipsis not in get_args(base) and len(args) > 1
        if not args:
            return value
        return [_normalise(args[i] if fixed and i < len(args) else args[0], v, parts + (i,), problems)
                for i, v in enumerate(value)]
    if origin in (dict, Mapping) and isinstance(value, Mapping) and len(get_args(base)) == 2:
        return {k: _normalise(get_args(base)[1], v, parts + (k,), problems) for k, v in value.items()}
    return value


def _annotate(tp: Any, info: FieldInfo) -> Any:
    """``tp`` with the field's constraints attached (so messages can state the range)."""
    return Annotated[(tp, *info.metadata)] if info.metadata else tp


def _with_origin(key: str, message: str, overrides: Mapping[str, str]) -> str:
    for k, item in overrides.items():
        if key == k or key.startswith(k + ".") or key.startswith(k + "["):
            return f"{item}: {message}"
    return message
