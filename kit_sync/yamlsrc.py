"""YAML loading that remembers where every value came from.

PyYAML's composer gives each node a start mark; we build plain Python data and a
map from path (tuple of keys / indexes) to 1-based line number, so validation
errors can say `config.yaml:14 contacts[3].tier: ...`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

Path_ = tuple[str | int, ...]
_ENV = re.compile(r"\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)\})")


@dataclass
class Located:
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)
    problems: list[tuple[Path_, str]] = field(default_factory=list)

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


def load_yaml(text: str, *, environ: dict[str, str] | None = None) -> Located:
    """Parse YAML text. Raises yaml.YAMLError (with a mark) on syntax errors."""
    env: Any = os.environ if environ is None else environ
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    located = Located(data=None)
    constructor = SafeConstructor()

    def build(node: yaml.Node, path: Path_) -> Any:
        located.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            constructor.flatten_mapping(node)
            for key_node, value_node in node.value:
                key = constructor.construct_object(key_node, deep=True)
                if not isinstance(key, str | int | float | bool):
                    located.problems.append((path, "mapping keys must be plain words"))
                    continue
                key = str(key) if not isinstance(key, str) else key
                sub = (*path, key)
                if key in result:
                    located.lines[sub] = key_node.start_mark.line + 1
                    located.problems.append((sub, f"'{key}' is given twice"))
                    continue
                located.lines[sub] = key_node.start_mark.line + 1
                result[key] = build(value_node, sub)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [build(item, (*path, i)) for i, item in enumerate(node.value)]
        value = constructor.construct_object(node, deep=True)
        if isinstance(value, str) and "$" in value:
            value, missing = expand_env(value, env)
            for name in missing:
                located.problems.append(
                    (path, f"environment variable {name} is not set (used as ${{{name}}})")
                )
        return value

    located.data = build(root, ()) if root is not None else None
    return located


def read_yaml_file(path: Path, *, environ: dict[str, str] | None = None) -> Located:
    return load_yaml(path.read_text(encoding="utf-8-sig"), environ=environ)
