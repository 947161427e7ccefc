"""YAML loading that remembers where every value came from.

PyYAML's composer gives each node a start mark; we build plain Python data and a
map from path (tuple of keys / indexes) to 1-based line number, so validation
errors can say `config.yaml:14 contacts[3].tier: ...`.

The nodes come from libyaml (`yaml.CSafeLoader`) when PyYAML was built with it: the
pure-Python scanner was most of the time a large roster took to load. Both
composers give the same nodes and marks; only the wording of syntax errors differs.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from kit_sync.files import MAX_ROSTER_BYTES, read_regular

# The C composer (libyaml) where PyYAML has it, the pure-Python one otherwise.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STR = "tag:yaml.org,2002:str"

Path_ = tuple[str | int, ...]
_ENV = re.compile(r"\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)\})")


@dataclass
class Located:
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)
    problems: list[tuple[Path_, str]] = field(default_factory=list)
    #: Strings as written, before ${ENV} expansion, for the values that had a `$`
    #: (config.exposure_warnings tells a literal secret from one taken from the
    #: environment without parsing the file again).
    raw: dict[Path_, str] = field(default_factory=dict)

    def line_of(self, path: Path_) -> int | None:
        """Line of the deepest known prefix of `path`."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None


def format_path(path: Path_) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def expand_env(text: str, environ: os._Environ[str] | dict[str, str]) -> tuple[str, list[str]]:
    """Replace ${NAME} from the environment; `$$` is a literal `$`. Returns missing names."""
    missing: list[str] = []

    def sub(m: re.Match[str]) -> str:
        if m.group(1) == "$":
            return "$"
        name = m.group(2)
        if name not in environ:
            missing.append(name)
            return ""
        return environ[name]

    return _ENV.sub(sub, text), missing


#: Bounds on what a small file may expand to: YAML aliases (*name) let 500 bytes
#: stand for a billion values ("billion laughs"), and deep nesting exhausts the
#: stack. A real config is a few levels deep and uses a handful of aliases.
MAX_DEPTH = 64
MAX_ALIAS_VALUES = 100_000


class YamlBoundsError(yaml.YAMLError):
    """The document is valid YAML but larger or deeper than any config could be."""

    def __init__(self, problem: str, mark: yaml.Mark | None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


def load_yaml(text: str, *, environ: dict[str, str] | None = None) -> Located:
    """Parse YAML text. Raises yaml.YAMLError (with a mark) on syntax errors, and
    YamlBoundsError for a document nested deeper than MAX_DEPTH or whose aliases
    expand to more than MAX_ALIAS_VALUES values."""
    env: Any = os.environ if environ is None else environ
    try:
        root = yaml.compose(text, Loader=_Loader)
    except RecursionError:
        raise YamlBoundsError(
            f"nested deeper than {MAX_DEPTH} levels; no kit-sync option goes that deep", None
        ) from None
    except yaml.MarkedYAMLError as exc:
        # libyaml stops at its own depth limit (1,000) before we could count: the
        # same error as ours, in the same words.
        if "maximum nesting depth" not in str(exc.problem):
            raise
        raise YamlBoundsError(
            f"nested deeper than {MAX_DEPTH} levels; no kit-sync option goes that deep",
            exc.problem_mark,
        ) from None
    located = Located(data=None)
    constructor = SafeConstructor()
    visited: set[int] = set()
    repeats = 0

    def count(node: yaml.Node, depth: int) -> None:
        """Enforce the bounds before `node` is built (every node goes through here)."""
        nonlocal repeats
        if depth > MAX_DEPTH:
            raise YamlBoundsError(
                f"nested deeper than {MAX_DEPTH} levels; no kit-sync option goes that deep",
                node.start_mark,
            )
        # The composer shares one node between an anchor and its aliases: a node
        # seen again is a value copied by an alias.
        if id(node) in visited:
            repeats += 1
            if repeats > MAX_ALIAS_VALUES:
                raise YamlBoundsError(
                    f"aliases (*name) expand to more than {MAX_ALIAS_VALUES:,} values; "
                    "write the values out instead of nesting aliases",
                    node.start_mark,
                )
        else:
            visited.add(id(node))

    def build(node: yaml.Node, path: Path_, depth: int = 0) -> Any:
        count(node, depth)
        located.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            own = []
            for key_node, value_node in node.value:
                if key_node.tag != "tag:yaml.org,2002:merge":
                    own.append((key_node, value_node))
                    continue
                # `<<: *base` (or a list of them): the merged mappings' keys, the
                # first source winning, and the mapping's own keys over all of them.
                sources = (
                    value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                )
                for source in reversed(sources):
                    if not isinstance(source, yaml.MappingNode):
                        located.problems.append((path, "<< merges only mappings"))
                        continue
                    result.update(build(source, path, depth + 1))
            given: set[str] = set()
            for key_node, value_node in own:
                key = (
                    key_node.value
                    if key_node.tag == _STR
                    else constructor.construct_object(key_node)
                    if isinstance(key_node, yaml.ScalarNode)
                    else None
                )
                if not isinstance(key, str | int | float | bool):
                    located.problems.append((path, "mapping keys must be plain words"))
                    continue
                key = str(key) if not isinstance(key, str) else key
                sub = (*path, key)
                located.lines[sub] = key_node.start_mark.line + 1
                if key in given:
                    located.problems.append((sub, f"'{key}' is given twice"))
                    continue
                given.add(key)
                result[key] = build(value_node, sub, depth + 1)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        # Most scalars are plain strings: no need for the constructor's bookkeeping.
        value = node.value if node.tag == _STR else constructor.construct_object(node, deep=True)
        if isinstance(value, str) and "$" in value:
            located.raw[path] = value
            value, missing = expand_env(value, env)
            for name in missing:
                located.problems.append(
                    (path, f"environment variable {name} is not set (used as ${{{name}}})")
                )
        return value

    located.data = build(root, ()) if root is not None else None
    return located


def read_yaml_file(path: Path, *, environ: dict[str, str] | None = None) -> Located:
    """Raises OSError (files.UnreadableFile for a FIFO, device or a file over
    files.MAX_ROSTER_BYTES), UnicodeDecodeError and yaml.YAMLError."""
    raw = read_regular(path, MAX_ROSTER_BYTES)
    return load_yaml(raw.decode("utf-8-sig"), environ=environ)
