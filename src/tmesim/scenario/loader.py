"""YAML scenario loading: packaged defaults, ``extends`` chains, ``--set`` overrides, validation.

User input is data, never code: files are parsed with PyYAML's safe loader only, and every
problem becomes a :class:`~tmesim.errors.ScenarioError` naming the file, line, key path, value,
what is expected and how to fix it.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
import types
import typing
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ..errors import ScenarioError, warn
from .schema import Scenario

DEFAULTS_LABEL = "packaged defaults"
Prov = dict[tuple, tuple[str, int | None]]


# --------------------------------------------------------------------------- YAML reading
def _walk_nodes(node, path: tuple, lines: Prov, label: str) -> None:
    """Record the line of every key and reject duplicate keys."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ScenarioError(
                    "duplicate key in scenario file",
                    file=label,
                    line=line,
                    key=".".join(map(str, (*path, key))),
                    has_value=False,
                    expected="each key at most once per mapping",
                    fix=f"remove one of the two entries (the first is on line {seen[key]})",
                )
            seen[key] = line
            lines[(*path, key)] = (label, line)
            _walk_nodes(value_node, (*path, key), lines, label)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*path, i)] = (label, item.start_mark.line + 1)
            _walk_nodes(item, (*path, i), lines, label)


#: limits on what a scenario file (or a --set value) may hold: they bound the time and memory
#: of loading, so that no input can hang tmesim or exhaust memory
MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 64
MAX_ALIASES = 1000
MAX_NODES = 200_000
MAX_EXTENDS = 32

_OPEN_TOKENS = (
    yaml.BlockMappingStartToken,
    yaml.BlockSequenceStartToken,
    yaml.FlowMappingStartToken,
    yaml.FlowSequenceStartToken,
)
_CLOSE_TOKENS = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)


def _limit_error(problem: str, label: str, line: int | None, fix: str) -> ScenarioError:
    return ScenarioError(
        problem,
        file=label,
        line=line,
        expected=f"a scenario file of plain data: at most {MAX_DEPTH} levels of nesting, "
        f"{MAX_ALIASES} aliases (*name) and {MAX_NODES} values once aliases are expanded",
        fix=fix,
    )


class _Loader(yaml.SafeLoader):
    """The safe loader, reading numbers such as ``1e-5`` as floats (YAML 1.2; YAML 1.1, which
    PyYAML implements, wants ``1.0e-5`` and would read ``1e-5`` as text)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _check_token_limits(text: str, label: str) -> None:
    """Nesting depth and number of aliases, from the token stream (no recursion, no expansion)."""
    depth = 0
    aliases = 0
    for tok in yaml.scan(text, Loader=yaml.SafeLoader):
        if isinstance(tok, _OPEN_TOKENS):
            depth += 1
            if depth > MAX_DEPTH:
                raise _limit_error(
                    f"YAML nested more than {MAX_DEPTH} levels deep",
                    label,
                    tok.start_mark.line + 1,
                    "flatten the structure; scenario keys are nested a few levels at most",
                )
        elif isinstance(tok, _CLOSE_TOKENS):
            depth -= 1
        elif isinstance(tok, yaml.AliasToken):
            aliases += 1
            if aliases > MAX_ALIASES:
                raise _limit_error(
                    f"more than {MAX_ALIASES} YAML aliases",
                    label,
                    tok.start_mark.line + 1,
                    "write the values out instead of repeating aliases (*name)",
                )


def _check_node_limits(node, label: str) -> None:
    """Reject alias cycles and documents that expand to more than MAX_NODES values."""
    sizes: dict[int, int] = {}
    depths: dict[int, int] = {}
    active: set[int] = set()
    # iterative post-order walk: (node, children already pushed?)
    stack = [(node, False)]
    while stack:
        n, expanded = stack.pop()
        key = id(n)
        if key in sizes:
            continue
        children = []
        if isinstance(n, yaml.MappingNode):
            children = [c for pair in n.value for c in pair]
        elif isinstance(n, yaml.SequenceNode):
            children = list(n.value)
        if not expanded:
            active.add(key)
            stack.append((n, True))
            for c in children:
                if id(c) in active:
                    raise _limit_error(
                        "a YAML alias refers to a value that contains it (an endless structure)",
                        label,
                        c.start_mark.line + 1,
                        "remove the alias (*name) from inside the anchored value (&name)",
                    )
                stack.append((c, False))
        else:
            active.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            depths[key] = 1 + max((depths[id(c)] for c in children), default=0)
            if depths[key] > MAX_DEPTH + 1:
                raise _limit_error(
                    f"YAML nested more than {MAX_DEPTH} levels deep once aliases are expanded",
                    label,
                    n.start_mark.line + 1,
                    "write the values out instead of nesting aliases (*name)",
                )
            if sizes[key] > MAX_NODES:
                raise _limit_error(
                    f"YAML expands to more than {MAX_NODES} values (aliases repeat whole "
                    "structures)",
                    label,
                    n.start_mark.line + 1,
                    "write the values out instead of nesting aliases (*name)",
                )


def _load_yaml(text: str, label: str):
    """Parse YAML text with the safe loader, within the limits above; return ``(data, node)``."""
    if len(text) > MAX_FILE_BYTES:
        raise _limit_error(
            f"YAML text is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB",
            label,
            None,
            "pass a scenario file; scenario files are a few kilobytes",
        )
    _check_token_limits(text, label)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        _check_node_limits(node, label)
        return loader.construct_document(node), node
    finally:
        loader.dispose()


def _parse_yaml_text(text: str, label: str) -> tuple[dict, Prov]:
    try:
        data, node = _load_yaml(text, label)
    except yaml.constructor.ConstructorError as exc:
        # a tag such as !!python/object is rejected by the safe loader: data, never code
        mark = getattr(exc, "problem_mark", None)
        raise ScenarioError(
            f"YAML tag not allowed: {getattr(exc, 'problem', None) or exc}",
            file=label,
            line=(mark.line + 1) if mark is not None else None,
            expected="plain YAML data: numbers, text, lists and mappings",
            fix="remove the '!!' tag; scenario files hold data only, never code",
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError(
            f"malformed YAML: {problem}",
            file=label,
            line=(mark.line + 1) if mark is not None else None,
            expected="a YAML mapping of scenario keys",
            fix="check indentation, colons and quotes near the line shown",
        ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ScenarioError(
            "a scenario file must be a mapping of keys to values",
            file=label,
            line=1,
            expected="top-level 'key: value' lines (e.g. 'name: my_run')",
            fix="start the file with keys such as name:, time:, domain:",
        )
    lines: Prov = {}
    if node is not None:
        _walk_nodes(node, (), lines, label)
    _check_keys_are_strings(data, (), label, lines)
    return data, lines


def _check_keys_are_strings(data, path, label, lines):
    if isinstance(data, dict):
        for k, v in data.items():
            if not isinstance(k, str):
                raise ScenarioError(
                    "scenario keys must be text",
                    file=label,
                    line=_line_for(lines, path),
                    key=".".join(map(str, (*path, k))),
                    has_value=False,
                    expected="a key made of letters, digits and _",
                    fix=f"quote or rename the key {k!r}",
                )
            _check_keys_are_strings(v, (*path, k), label, lines)


def _read_bounded(path: Path, label: str) -> str:
    """The text of a regular file of at most MAX_FILE_BYTES (never a FIFO or a device, which
    could block or never end)."""
    import stat

    st = os.stat(path)
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(str(path))
    if not stat.S_ISREG(st.st_mode):
        raise ScenarioError(
            "scenario path is not a regular file (a device, FIFO or socket)",
            file=label,
            expected="the path of a YAML file",
            fix="save the scenario to a file and pass its path",
        )
    with open(path, "rb") as f:
        raw = f.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise _limit_error(
            f"scenario file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB",
            label,
            None,
            "pass a scenario file; scenario files are a few kilobytes",
        )
    return raw.decode("utf-8")


def _read_file(path: Path) -> tuple[dict, Prov]:
    label = str(path)
    try:
        text = _read_bounded(path, label)
    except FileNotFoundError:
        raise ScenarioError(
            "scenario file not found",
            file=label,
            expected="the path of an existing YAML file",
            fix="check the spelling, or run 'ls scenarios/' to see the packaged scenarios",
        ) from None
    except IsADirectoryError:
        raise ScenarioError(
            "scenario path is a directory",
            file=label,
            expected="the path of a YAML file",
            fix="name a .yaml file inside the directory",
        ) from None
    except PermissionError:
        raise ScenarioError(
            "scenario file cannot be read (permission denied)",
            file=label,
            fix="check the file's permissions",
        ) from None
    except UnicodeDecodeError:
        raise ScenarioError(
            "scenario file is not UTF-8 text",
            file=label,
            expected="a UTF-8 encoded YAML file",
            fix="save the file as UTF-8 text",
        ) from None
    return _parse_yaml_text(text, label)


def _defaults() -> tuple[dict, Prov]:
    text = resources.files("tmesim.scenario").joinpath("defaults.yaml").read_text("utf-8")
    data, lines = _parse_yaml_text(text, DEFAULTS_LABEL)
    return data, {k: (DEFAULTS_LABEL, None) for k in lines}


# --------------------------------------------------------------------------- merging
def _deep_merge(base: dict, over: dict) -> dict:
    """Merge ``over`` into a copy of ``base``: mappings merge key by key, anything else replaces."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _resolve_file(path: Path, stack: tuple[Path, ...]) -> tuple[dict, Prov]:
    """Read ``path`` and everything it ``extends``, parents first."""
    if "\0" in str(path):
        raise ScenarioError(
            "scenario path contains a NUL character",
            file=repr(str(path)),
            fix="give the plain path of a YAML file",
        )
    real = path.resolve()
    data, lines = _read_file(path)
    parent_ref = data.pop("extends", None)
    if parent_ref is None:
        return data, lines
    line = lines.get(("extends",), (str(path), None))[1]
    if not isinstance(parent_ref, str) or not parent_ref.strip():
        raise ScenarioError(
            "'extends' must name a scenario file",
            file=str(path),
            line=line,
            key="extends",
            value=parent_ref,
            expected="a relative path such as baseline.yaml",
            fix="write extends: other.yaml (relative to this file's folder)",
        )
    parent = (path.parent / parent_ref) if not os.path.isabs(parent_ref) else Path(parent_ref)
    chain = (*stack, real)
    if len(chain) >= MAX_EXTENDS:
        raise ScenarioError(
            f"'extends' chain is longer than {MAX_EXTENDS} files",
            file=str(path),
            line=line,
            key="extends",
            value=parent_ref,
            expected=f"at most {MAX_EXTENDS} files from a scenario to its first parent",
            fix="extend a scenario nearer the top of the chain",
        )
    if parent.resolve() in chain:
        cycle = " -> ".join(p.name for p in (*chain, parent.resolve()))
        raise ScenarioError(
            f"'extends' forms a cycle: {cycle}",
            file=str(path),
            line=line,
            key="extends",
            value=parent_ref,
            expected="a chain of extends that ends in a file without extends",
            fix="remove 'extends' from one of the files in the cycle",
        )
    if not parent.is_file():
        raise ScenarioError(
            "the file named by 'extends' does not exist",
            file=str(path),
            line=line,
            key="extends",
            value=parent_ref,
            expected=f"a path relative to {path.parent or '.'}/ of an existing scenario file",
            fix="correct the path, or remove 'extends' to start from the packaged defaults",
        )
    pdata, plines = _resolve_file(parent, chain)
    merged = _deep_merge(pdata, data)
    return merged, {**plines, **lines}


# --------------------------------------------------------------------------- --set overrides
def parse_set_options(items) -> list[tuple[str, Any]]:
    """Parse ``KEY=VALUE`` strings; values are YAML (``time.duration_h=48``, ``x=[1, 2]``)."""
    out = []
    for item in items or ():
        key, sep, raw = str(item).partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ScenarioError(
                "a --set option must look like KEY=VALUE",
                file="--set",
                key=key or None,
                value=item,
                expected="a dotted key path, '=', and a YAML value, e.g. time.duration_h=48",
                fix="write --set time.duration_h=48 (no spaces around '=')",
            )
        try:
            value = _load_yaml(raw, "--set")[0] if raw.strip() else None
        except yaml.YAMLError:
            raise ScenarioError(
                "the value of a --set option is not valid YAML",
                file="--set",
                key=key,
                value=raw,
                expected="a YAML value: a number, true/false, text, [list] or {mapping}",
                fix="quote text values, e.g. --set name='my run'",
            ) from None
        out.append((key, value))
    return out


def apply_overrides(data: dict, overrides, prov: Prov | None = None, label: str = "--set"):
    """Return a copy of ``data`` with each ``(dotted_key, value)`` set, creating mappings."""
    data = copy.deepcopy(data)
    for key, value in overrides:
        parts = key.split(".") if isinstance(key, str) else list(key)
        node = data
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part)
            if not isinstance(nxt, dict):
                if nxt is not None:
                    raise ScenarioError(
                        f"cannot set a key inside '{'.'.join(parts[: i + 1])}', which is not a mapping",
                        file=label,
                        key=".".join(parts),
                        value=value,
                        expected="a key path that follows the scenario's sections",
                        fix="check the key path against docs/scenario-reference.md",
                    )
                nxt = {}
                node[part] = nxt
            node = nxt
        node[parts[-1]] = copy.deepcopy(value)
        if prov is not None:
            prov[tuple(parts)] = (label, None)
    return data


# --------------------------------------------------------------------------- validation errors
def _unwrap(tp):
    """The model or container type behind Optional/Union annotations."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        for a in args:
            if isinstance(a, type) and issubclass(a, BaseModel):
                return a
            if typing.get_origin(a) in (dict, list):
                return a
        return args[0] if args else tp
    return tp


def _schema_at(loc: tuple):
    """Return ``(field_info, parent_model)`` for a validation location, or ``(None, None)``."""
    tp: Any = Scenario
    info = None
    parent = None
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if part not in tp.model_fields:
                return None, tp
            parent = tp
            info = tp.model_fields[part]
            tp = info.annotation
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
            info = None
        elif typing.get_origin(tp) is list:
            tp = typing.get_args(tp)[0]
        else:
            return info, parent
    return info, parent


def _unit(info) -> str:
    extra = getattr(info, "json_schema_extra", None) or {}
    unit = extra.get("unit", "") if isinstance(extra, dict) else ""
    return f" ({unit})" if unit else ""


def _line_for(prov: Prov, loc: tuple, file: str | None = None) -> int | None:
    """Line of the longest prefix of ``loc`` with a known place (in ``file`` if given)."""
    for n in range(len(loc), -1, -1):
        hit = prov.get(tuple(loc[:n]))
        if hit is not None and (file is None or hit[0] == file):
            return hit[1]
    return None


def _file_for(prov: Prov, loc: tuple, fallback: str) -> str:
    for n in range(len(loc), 0, -1):
        hit = prov.get(tuple(loc[:n]))
        if hit is not None and hit[0] != DEFAULTS_LABEL:
            return hit[0]
    return fallback


def _lookup(data, loc):
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return None
    return node


_TYPE_WORDS = {
    "float_type": "a number",
    "float_parsing": "a number",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "int_parsing": "a whole number",
    "bool_type": "true or false",
    "string_type": "text",
    "list_type": "a list, e.g. [1, 2]",
    "dict_type": "a mapping of keys to values",
    "model_type": "a mapping of keys to values",
    "model_attributes_type": "a mapping of keys to values",
    "none_required": "nothing (null)",
}


def _error_from_pydantic(err: dict, data: dict, prov: Prov, top_file: str) -> ScenarioError:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
    etype = err["type"]
    msg = err.get("msg", "")
    ctx = err.get("ctx") or {}
    key_loc = loc
    expected = None
    fix = None
    problem = "invalid value"

    if etype == "value_error" and "|" in str(ctx.get("error", msg)):
        raw = str(ctx.get("error", msg))
        rel, _, expected = raw.partition("|")
        if rel:
            rel_parts = tuple(int(q) if q.isdigit() else q for q in rel.split("."))
            # absolute paths (starting at a top-level section) are used as given
            key_loc = rel_parts if rel_parts[0] in Scenario.model_fields else (*loc, *rel_parts)
        problem = "inconsistent or invalid value"
        fix = f"change {'.'.join(map(str, key_loc))} to {expected}"
    info, parent = _schema_at(key_loc)
    unit = _unit(info)
    value = _lookup(data, key_loc)
    has_value = True

    if etype == "extra_forbidden":
        problem = "unknown key"
        allowed = list(parent.model_fields) if parent is not None else []
        name = str(key_loc[-1])
        close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.5)
        expected = "one of: " + ", ".join(allowed) if allowed else "no key here"
        fix = f"did you mean '{close[0]}'?" if close else "remove the key, or check its spelling"
        if parent is not None and close:
            fix += " Rename the key."
        has_value = True
    elif etype == "missing":
        problem = "required key is missing"
        has_value = False
        expected = f"a value{unit}"
        if info is not None and info.description:
            expected += f": {info.description}"
        fix = f"add '{key_loc[-1]}: <value>' under '{'.'.join(map(str, key_loc[:-1])) or 'top level'}'"
    elif etype in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        words = {
            "greater_than": ("greater than", "gt"),
            "greater_than_equal": ("at least", "ge"),
            "less_than": ("less than", "lt"),
            "less_than_equal": ("at most", "le"),
        }[etype]
        bound = ctx.get(words[1])
        expected = f"a number {words[0]} {bound}{unit}"
        fix = f"use a value {words[0]} {bound}"
    elif etype == "literal_error":
        expected = f"one of {ctx.get('expected')}"
        fix = f"use one of {ctx.get('expected')}"
    elif etype in ("string_too_short", "string_pattern_mismatch", "string_too_long"):
        expected = "text " + msg.removeprefix("String ").replace("should", "that should")
        fix = "use letters, digits, '_', '-' or '.'" if "pattern" in etype else "adjust the text"
    elif etype == "finite_number":
        expected = f"a finite number{unit}"
        fix = "write a finite number (.inf and .nan are not allowed)"
    elif etype in _TYPE_WORDS:
        problem = "wrong type"
        expected = _TYPE_WORDS[etype] + unit
        default = getattr(info, "default", None) if info is not None else None
        example = f", e.g. {default!r}" if isinstance(default, (int, float, str, list)) else ""
        fix = f"write {_TYPE_WORDS[etype]}{example} (without quotes for numbers)"
    elif expected is None:
        expected = msg
        fix = "see docs/scenario-reference.md for the allowed values"

    if etype == "value_error" and "|" not in str(ctx.get("error", msg)):
        expected = str(ctx.get("error", msg))
        fix = "see docs/scenario-reference.md"

    file = _file_for(prov, key_loc, top_file)
    return ScenarioError(
        f"scenario is invalid: {problem}",
        file=file,
        line=_line_for(prov, key_loc, file) if file != "--set" else None,
        key=".".join(map(str, key_loc)) or None,
        value=value,
        expected=expected,
        fix=fix,
        has_value=has_value,
    )


def _drop_removed_entries(data: dict) -> None:
    """Delete named entries set to null.

    ``fields.<name>: null`` removes a field the defaults (or a parent) defined, together with
    every cell type's exchange with it and every recruitment it drives (``recruitment.signal``
    becomes null); ``cells.<type>.secretion.<field>: null`` removes one exchange;
    ``fields.<name>.boundary.<side>: null`` makes that side zero-flux again.
    """
    removed = set()
    fields = data.get("fields")
    if isinstance(fields, dict):
        removed = {k for k, v in fields.items() if v is None}
        for name in removed:
            del fields[name]
        for cfg in fields.values():
            bc = cfg.get("boundary") if isinstance(cfg, dict) else None
            if isinstance(bc, dict):
                for side in [k for k, v in bc.items() if v is None]:
                    del bc[side]
    cells = data.get("cells")
    if isinstance(cells, dict):
        for cfg in cells.values():
            sec = cfg.get("secretion") if isinstance(cfg, dict) else None
            if isinstance(sec, dict):
                for name in [k for k, v in sec.items() if v is None or k in removed]:
                    del sec[name]
            rec = cfg.get("recruitment") if isinstance(cfg, dict) else None
            if isinstance(rec, dict) and isinstance(rec.get("signal"), str):
                if rec["signal"] in removed:
                    rec["signal"] = None


def _validate(data: dict, prov: Prov, top_file: str) -> Scenario:
    _drop_removed_entries(data)
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = _error_from_pydantic(errors[0], data, prov, top_file)
        if len(errors) > 1:
            others = [_error_from_pydantic(e, data, prov, top_file) for e in errors[1:]]
            extra = "\n".join(
                f"  also:     {o.key}: {o.problem.removeprefix('scenario is invalid: ')}"
                for o in others
            )
            first = ScenarioError(
                first.problem,
                file=first.file,
                line=first.line,
                key=first.key,
                value=first.value,
                expected=first.expected,
                fix=(first.fix or "") + "\n" + extra,
                has_value=first.has_value,
            )
        raise first from None


# --------------------------------------------------------------------------- public API
def load_scenario(path=None, overrides=(), *, seed: int | None = None) -> Scenario:
    """Load and validate a scenario.

    Parameters
    ----------
    path : str or Path, optional
        A scenario YAML file; ``None`` gives the packaged defaults.
    overrides : iterable of str or (key, value)
        ``--set`` style ``"dotted.key=value"`` strings or parsed pairs, applied last.
    seed : int, optional
        Replaces the scenario's ``seed``.
    """
    base, prov = _defaults()
    top = DEFAULTS_LABEL
    if path is not None:
        top = str(path)
        data, lines = _resolve_file(Path(path), ())
        base = _deep_merge(base, data)
        prov.update(lines)
    pairs = [o for o in overrides if not isinstance(o, str)]
    pairs = parse_set_options([o for o in overrides if isinstance(o, str)]) + pairs
    if seed is not None:
        pairs.append(("seed", seed))
    base = apply_overrides(base, pairs, prov)
    base.pop("extends", None)
    _anchor_mask_path(base, prov)
    sc = _validate(base, prov, top)
    _check_mask_exists(sc, prov, top)
    return sc


_MASK_KEY = ("domain", "mask", "path")


def _anchor_mask_path(data: dict, prov: Prov) -> None:
    """Make a relative ``domain.mask.path`` relative to the folder of the file that set it (the
    working directory for ``--set``), so a scenario runs the same from any folder."""
    mask = _lookup(data, _MASK_KEY[:2])
    path = mask.get("path") if isinstance(mask, dict) else None
    if not isinstance(path, str) or not path or "\0" in path or os.path.isabs(path):
        return
    origin = prov.get(_MASK_KEY, (None, None))[0]
    folder = "."
    if origin not in (None, "--set", DEFAULTS_LABEL) and os.path.isfile(origin):
        folder = os.path.dirname(origin) or "."
    mask["path"] = os.path.abspath(os.path.join(folder, path))


def _check_mask_exists(sc: Scenario, prov: Prov, top: str) -> None:
    if sc.domain.geometry != "mask":
        return
    path = sc.domain.mask.path
    if "\0" in path or not os.path.isfile(path):
        origin = prov.get(_MASK_KEY, (top, None))
        raise ScenarioError(
            "mask file not found",
            file=origin[0],
            line=origin[1],
            key="domain.mask.path",
            value=path,
            expected="an existing .npy, .png or .tif file, relative to the scenario file",
            fix="check the path; a relative path starts at the folder of the scenario file",
        )


def scenario_from_dict(
    data: dict | None = None, overrides=(), *, label="<dict>", complete=False
) -> Scenario:
    """Validate a scenario given as a (partial) mapping, merged over the packaged defaults.

    ``complete=True`` takes ``data`` as a whole scenario (e.g. a dump of a resolved one) and
    does not merge it over the defaults, so fields it removed stay removed.
    """
    base, prov = _defaults()
    if complete:
        base, prov = {}, {}
    if data:
        if not isinstance(data, dict):
            raise ScenarioError(
                "a scenario must be a mapping", file=label, fix="pass a dict of scenario keys"
            )
        data = dict(data)
        data.pop("extends", None)
        base = _deep_merge(base, data)
        for key in _leaf_paths(data):
            prov[key] = (label, None)
    base = apply_overrides(base, overrides, prov, label=label)
    return _validate(base, prov, label)


def _leaf_paths(data, path=()):
    if isinstance(data, dict):
        for k, v in data.items():
            yield (*path, k)
            yield from _leaf_paths(v, (*path, k))


def warn_about(scenario: Scenario) -> None:
    """Warn about settings that are valid but probably not what was meant: administrations
    that fall at or after the end of the run (they would be reported as having no effect)."""
    end = scenario.n_steps * scenario.time.dt_min / 60.0
    for i, adm in enumerate(scenario.therapy):
        late = [t for t in adm.times_h() if t >= end]
        if late:
            warn(
                f"therapy.{i} ({adm.agent}): {len(late)} of {adm.count} administration(s) at or "
                f"after the end of the run ({end:g} h; first at {late[0]:g} h) are never given"
            )


def default_scenario() -> Scenario:
    """The packaged default scenario."""
    return load_scenario(None)


def dump_scenario(scenario: Scenario) -> str:
    """The fully resolved scenario as YAML text; loading it back gives an equal scenario."""
    data = scenario.model_dump(mode="json", exclude={"extends"})
    # entries of the packaged defaults that this scenario removed are written as null, so that
    # loading the text (which merges over the defaults) removes them again
    defaults, _ = _defaults()
    for name in defaults.get("fields", {}):
        data["fields"].setdefault(name, None)
    for kind, cfg in defaults.get("cells", {}).items():
        for name in (cfg or {}).get("secretion", {}) or {}:
            if name in data["fields"] and data["fields"][name] is not None:
                data["cells"][kind]["secretion"].setdefault(name, None)
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)
