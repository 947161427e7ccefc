"""Config loading details: defaults, environment substitution, locations."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from kit_sync.config import load_config
from kit_sync.errors import ConfigError
from kit_sync.yamlsrc import expand_env, load_yaml


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kit.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    config, _ = load_config(write(tmp_path, "contacts: [{name: A, every: 2 weeks}]\n"))
    assert config.sync.every == timedelta(minutes=10)
    assert config.backend.type == "local"
    assert config.backend.path == tmp_path / "tasks"  # type: ignore[union-attr]
    assert config.state_path() == tmp_path / "xdg" / "kit-sync" / "kit.sqlite"
    assert config.task.title == "Keep in touch with {name}"
    assert config.schedule.spread_new and not config.schedule.avoid_weekends


def test_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    config, _ = load_config(
        write(
            tmp_path,
            """\
        backend: {type: local, path: data/tasks}
        state: data/state.sqlite
        contacts: [{name: A, every: 2 weeks}]
        """,
        )
    )
    assert config.backend.path == tmp_path / "data" / "tasks"  # type: ignore[union-attr]
    assert config.state_path() == tmp_path / "data" / "state.sqlite"


def test_env_substitution(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        backend:
          type: caldav
          url: https://${DAV_HOST}/dav/
          username: ${DAV_USER}
          password: price is $$5
        contacts: [{name: A, every: 2 weeks}]
        """,
    )
    config, _ = load_config(path, environ={"DAV_HOST": "dav.example.com", "DAV_USER": "me"})
    assert config.backend.url == "https://dav.example.com/dav/"  # type: ignore[union-attr]
    assert config.backend.username == "me"  # type: ignore[union-attr]
    assert config.backend.password.get_secret_value() == "price is $5"  # type: ignore[union-attr]
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    assert err.value.problems == [
        "kit.yaml:3 backend.url: environment variable DAV_HOST is not set (used as ${DAV_HOST})",
        "kit.yaml:4 backend.username: environment variable DAV_USER is not set (used as "
        "${DAV_USER})",
    ]


def test_expand_env() -> None:
    assert expand_env("a${X}b$$c$d", {"X": "1"}) == ("a1b$c$d", [])
    assert expand_env("${Y}", {}) == ("", ["Y"])


def test_duplicate_keys_are_errors() -> None:
    located = load_yaml("a: 1\nb: 2\na: 3\n")
    assert located.problems == [(("a",), "'a' is given twice")]


def test_line_numbers_for_nested_items() -> None:
    located = load_yaml("x:\n  - a: 1\n  - b:\n      c: 2\n")
    assert located.line_of(("x", 1, "b", "c")) == 4
    assert located.line_of(("x", 1, "b", "nope")) == 3


def test_sync_every_and_durations(tmp_path: Path) -> None:
    config, _ = load_config(
        write(
            tmp_path,
            """\
        sync: {every: 90 seconds, max_backoff: 2 hours}
        contacts: [{name: A, every: 2 weeks}]
        """,
        )
    )
    assert config.sync.every == timedelta(seconds=90)
    assert config.sync.max_backoff == timedelta(hours=2)


def test_exchange_needs_a_way_to_find_the_server(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(
            write(
                tmp_path,
                """\
            backend: {type: exchange, email: me@example.com}
            contacts: [{name: A, every: 2 weeks}]
            """,
            )
        )
    assert "give one of server, service_endpoint or autodiscover: true" in str(err.value)


EXCHANGE_BACKEND = """\
backend:
  type: exchange
  email: me@example.com
  service_endpoint: https://mail.example.com/EWS/Exchange.asmx
  password: secret
"""


@pytest.mark.parametrize(("old", "new"), [("defer", "cancel"), ("delete", "delete")])
def test_old_exchange_on_remove_still_loads_as_the_one_removal_policy(
    tmp_path: Path, old: str, new: str
) -> None:
    text = EXCHANGE_BACKEND + f"  on_remove: {old}\ncontacts: [{{name: A, every: 2 weeks}}]\n"
    config, _ = load_config(write(tmp_path, text))
    assert config.task.on_remove == new
    assert config.task.wording().on_remove == new
    assert any("backend.on_remove is deprecated" in w and new in w for w in config.warnings)


def test_old_exchange_on_remove_that_contradicts_task_on_remove_is_an_error(
    tmp_path: Path,
) -> None:
    text = EXCHANGE_BACKEND + "  on_remove: delete\ntask: {on_remove: cancel}\n"
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    assert "disagree" in str(err.value)


def test_on_remove_is_not_an_option_of_other_backends(tmp_path: Path) -> None:
    text = "backend: {type: local, path: t, on_remove: delete}\n"
    with pytest.raises(ConfigError):
        load_config(write(tmp_path, text))
