"""Writing the config file for the user: `kit-sync add` and `kit-sync init`.

`add` edits the YAML with ruamel.yaml's round-trip mode, so every comment, quote and
indentation of the file stays as the user wrote it; the result is validated (config
and roster) before it replaces the file atomically, and an invalid result writes
nothing.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

from kit_sync.errors import ConfigError, UsageError
from kit_sync.model import Roster

STARTER = """\
# kit-sync config, written by `kit-sync init`. Check it with `kit-sync check`,
# add people with `kit-sync add "Name" --email ... --tier ...`, then run
# `kit-sync sync` once or `kit-sync run` to keep syncing.
# Every option is described in the README ("All options").
# Paths are relative to this file; ${{NAME}} in a value is taken from the environment.

# IANA time zone: decides which day a completed task counts for.
timezone: {timezone}

# Where the tasks live. The default is a folder of .ics files (todoman and khal
# read it). For a phone, a CalDAV server:
#   backend: {{type: caldav, url: https://dav.example.com/, username: me,
#             password: {{env: CALDAV_PASSWORD}}}}
# For Outlook: type exchange (Exchange Server) or graph (Microsoft 365); see README.
backend:
  type: local
  path: ~/.local/share/kit-sync/tasks

# Tiers: how often, how and how important. Intervals: "3 weeks", "2 months",
# "quarterly", ... Channels: email, call, lunch, coffee, message, any.
tiers:
  inner:
    every: 3 weeks
    channel: lunch
    priority: high
  core:
    every: 2 months
    channel: call
  wide:
    every: quarterly
    channel: email
    priority: low

# The roster: `kit-sync add` appends here. Only a name and a tier (or every:)
# are required; email, phone, notes, city, company, birthday are shown on the task.
contacts:
  - name: Ada Example
    email: ada@example.com
    tier: core
    notes: Replace me with the people you want to keep in touch with.

# An even load: new due dates move up to 15% of their interval (at most 14 days)
# to the least loaded week, never onto an easy day.
schedule:
  capacity: {{per_week: 10}}        # due dates a week you can keep up with
  flex: 15%
  easy_days: [saturday, sunday]

# The catch-up hour (`kit-sync agenda`): minutes per channel.
agenda:
  minutes: {{email: 5, message: 3, call: 15}}

# The weekly review (`kit-sync digest`), emailed by `kit-sync run` when smtp is set:
# digest:
#   every: monday 08:00
#   to: me@example.com
#   smtp: {{host: smtp.example.com, security: starttls, username: me@example.com,
#          password: {{env: SMTP_PASSWORD}}}}
"""


def default_config_path(environ: Any = None) -> Path:
    """Where `init` writes: $KIT_SYNC_CONFIG when set, else the user's config folder
    (the last place every command looks: config.config_locations)."""
    from kit_sync.config import config_locations

    env = os.environ if environ is None else environ
    if env.get("KIT_SYNC_CONFIG"):
        return Path(env["KIT_SYNC_CONFIG"])
    return config_locations(env)[-1]


def init_config(path: Path, timezone: str) -> Path:
    """Write the commented starter config at `path`; never overwrite a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(path, "x", encoding="utf-8") as handle:
            handle.write(STARTER.format(timezone=timezone))
    except FileExistsError:
        raise UsageError(
            f"{path} already exists; kit-sync init never overwrites a config "
            "(edit it, or move it away first)"
        ) from None
    with contextlib.suppress(OSError):
        path.chmod(0o600)  # it may come to hold a password
    return path


# --- add -------------------------------------------------------------------------------


def _yaml() -> Any:
    from ruamel.yaml import YAML

    y = YAML()  # round-trip: comments, quotes, key order and flow style are kept
    y.preserve_quotes = True
    y.width = 4096  # never re-wrap a long line
    y.indent(mapping=2, sequence=4, offset=2)
    # `alarm: null` stays `null` (round-trip would write an empty value)
    y.representer.add_representer(
        type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    return y


def _detect_indent(text: str) -> tuple[int, int, int]:
    """(mapping, sequence, offset) as the file writes its `contacts:` list."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.rstrip() == "contacts:":
            for nxt in lines[i + 1 :]:
                stripped = nxt.lstrip(" ")
                if stripped.startswith("- "):
                    offset = len(nxt) - len(stripped)
                    return 2, offset + 2, offset
                if stripped and not stripped.startswith("#"):
                    break
    return 2, 4, 2


def _trailing_comment(node: Any) -> tuple[Any, Any, int] | None:
    """Where the comment lines after the last item of `node` sit in ruamel's tree
    (the deepest last key/index that carries one): (container, key, slot)."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    found = None
    while isinstance(node, CommentedMap | CommentedSeq) and len(node):
        key = list(node.keys())[-1] if isinstance(node, CommentedMap) else len(node) - 1
        slot = 2 if isinstance(node, CommentedMap) else 0
        entry = node.ca.items.get(key)
        if entry and len(entry) > slot and entry[slot] is not None:
            found = (node, key, slot)
        node = node[key]
    return found


def append_contact(text: str, entry: dict[str, Any]) -> str:
    """`text` with `entry` appended to its `contacts:` list, everything else as it was.

    The comment lines that followed the old last contact (ruamel attaches them to
    it) stay after the new one, so the new contact lands at the end of the list,
    not after the next section's comments."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    from ruamel.yaml.error import CommentMark
    from ruamel.yaml.tokens import CommentToken

    y = _yaml()
    y.indent(*_detect_indent(text))
    data = y.load(text)
    if data is None:
        data = CommentedMap()
    if not isinstance(data, CommentedMap):
        raise ConfigError("the config file must be a mapping of options")
    item = CommentedMap()
    for key, value in entry.items():
        if isinstance(value, list):
            value = CommentedSeq([_as_text(v) for v in value])
            value.fa.set_flow_style()  # email: [a@x, b@y], as people write it
        item[key] = _as_text(value)
    contacts = data.get("contacts")
    if contacts is None:
        data["contacts"] = CommentedSeq([item])
    elif not isinstance(contacts, CommentedSeq):
        raise ConfigError("contacts: must be a list of people")
    else:
        where = _trailing_comment(contacts)
        contacts.append(item)
        if where is not None:
            node, key, slot = where
            token = node.ca.items[key][slot]
            head, newline, tail = token.value.partition("\n")
            if tail:
                token.value = head + newline
                last_key = list(item.keys())[-1]
                item.ca.items[last_key] = [
                    None,
                    None,
                    CommentToken("\n" + tail, CommentMark(0), None),
                    None,
                ]
    if isinstance(contacts, CommentedSeq) and contacts.fa.flow_style():
        contacts.fa.set_block_style()  # `contacts: []` becomes a block list
    out = io.StringIO()
    y.dump(data, out)
    result = out.getvalue()
    if "\r\n" in text:  # a file written on Windows keeps its line endings
        result = result.replace("\r\n", "\n").replace("\n", "\r\n")
    return result


def _where(problem: str, tmp_name: str, name: str, old: str, new: str) -> str:
    """A problem found in the candidate file, told against the user's file: one on a
    line of the new entry says "the new entry" (that line is not in the file)."""
    import difflib
    import re

    added: set[int] = set()
    matcher = difflib.SequenceMatcher(None, old.splitlines(), new.splitlines(), autojunk=False)
    for tag, _, _, j1, j2 in matcher.get_opcodes():
        if tag in ("insert", "replace"):
            added.update(range(j1 + 1, j2 + 1))
    # The config's own problems name the candidate file, the roster's the user's.
    m = re.match(f"(?:{re.escape(tmp_name)}|{re.escape(name)})" + r":(\d+) ", problem)
    if m and int(m.group(1)) in added:
        return "the new entry: " + problem[m.end() :]
    return problem.replace(tmp_name, name)


def _validate(candidate: Path, path: Path) -> Roster:
    """Load `candidate` as if it were `path` (same folder: relative paths agree; the
    state file, which `only: {seen_within}` reads, is `path`'s)."""
    from kit_sync.app import roster_context
    from kit_sync.clock import zone_of
    from kit_sync.config import load_config
    from kit_sync.roster import load_roster

    config, located = load_config(candidate)
    config._source = path
    journal, today = roster_context(config, zone_of(config.timezone))
    return load_roster(config, located, journal=journal, today=today)


def _as_text(value: Any) -> Any:
    """A string the config's YAML 1.1 reader would take for something else (yes, no,
    on, off, null, 12, 2026-01-02) is written quoted, so it stays the text typed."""
    if not isinstance(value, str):
        return value
    import yaml
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString

    try:
        read = yaml.safe_load(value)
    except yaml.YAMLError:
        return value  # not a plain scalar: ruamel quotes it itself
    retyped = read is None or isinstance(read, bool | int | float | date)
    return DoubleQuotedScalarString(value) if retyped else value


def add_contact(path: Path, entry: dict[str, Any]) -> str:
    """Append a contact to the config at `path`; returns the new contact's id.

    The new file is checked as `kit-sync check` would (config and roster, with the
    included files) before it replaces the old one atomically; when it has problems
    nothing is written and ConfigError lists them."""
    from kit_sync.app import load

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} does not exist; create one with: kit-sync init"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    from ruamel.yaml.error import YAMLError

    try:
        new_text = append_contact(text, entry)
    except YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML; fix it first ({exc})") from None
    before = {c.id for c in load(path).roster.contacts}
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(new_text)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            roster = _validate(tmp, path)
        except ConfigError as exc:
            problems = [_where(p, tmp.name, path.name, text, new_text) for p in exc.problems]
            raise ConfigError(
                f"not added: {path.name} would have {len(problems) or 1} problem(s); "
                "nothing was written",
                problems or [str(exc).replace(tmp.name, path.name)],
            ) from None
        new = [c for c in roster.contacts if c.id not in before]
        if len(new) != 1:
            raise ConfigError(
                f"not added: {entry['name']} is already in the roster (same id or email); "
                "nothing was written"
            )
        with contextlib.suppress(OSError):
            os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return new[0].id
