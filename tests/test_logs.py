"""Logs: readable text on a terminal, one JSON object per line with --log-format json,
and every action names its contact and its address on the backend."""

from __future__ import annotations

import copy
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kit import BASE_CONFIG, World
from test_service_health import cli

from kit_sync.logs import JsonFormatter, TextFormatter, setup_logging


@pytest.fixture
def world(tmp_path: Path) -> World:
    config = copy.deepcopy(BASE_CONFIG)
    config["contacts"].append(
        {"name": "Luis García", "email": "luis@example.net", "every": "30 days"}
    )
    return World(tmp_path, config)


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """Logging set up as the CLI does, into a string; restored afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.getLogger("kit_sync").level)
    out = io.StringIO()
    yield out
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    logging.getLogger("kit_sync").setLevel(saved[2])


def parse_lines(text: str) -> list[dict[str, Any]]:
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"line {number} is not JSON: {line!r}") from exc
        assert isinstance(record, dict), line
        records.append(record)
    return records


def test_json_logs_parse_line_by_line_and_name_contact_and_href(
    world: World, capfd: pytest.CaptureFixture[str]
) -> None:
    ran = cli(capfd, "--log-format", "json", "-v", "--config", str(world.config_path), "sync")
    assert ran.code == 0, ran.text
    records = parse_lines(ran.err)
    assert records
    for record in records:
        assert {"time", "level", "logger", "message"} <= set(record)
        assert record["level"] in ("debug", "info", "warning", "error", "critical")
    actions = [r for r in records if r["message"].startswith("create ")]
    assert {r["contact_id"] for r in actions} == {
        "ann-example-com",
        "bob-example-com",
        "luis-example-net",
    }
    for record in actions:
        assert record["contact_id"] in record["message"]
        assert record["href"] in record["message"]
        assert (world.folder / record["href"]).is_file()


def test_every_kind_of_action_is_logged_with_contact_and_href(
    world: World, capfd: pytest.CaptureFixture[str]
) -> None:
    world.sync()
    ann = world.the_open("ann-example-com")
    world.complete_raw(ann, "COMPLETED:20261121T090000Z")  # regenerate
    data = copy.deepcopy(world.config_data)
    data["contacts"] = [c for c in data["contacts"] if c["name"] != "Bob Stone"]  # cancel
    data["contacts"][-1]["every"] = "60 days"  # update Luis's due date
    world.write_config(data)
    # One log line per task is -v's (without it `sync` prints its summary only; pinned
    # in test_cli_conventions.py).
    ran = cli(capfd, "--log-format", "json", "-v", "--config", str(world.config_path), "sync")
    assert ran.code == 0, ran.text
    records = parse_lines(ran.err)
    by_verb = {r["message"].split()[0]: r for r in records if "contact_id" in r and "href" in r}
    assert {"regenerate", "cancel", "update"} <= set(by_verb), [r["message"] for r in records]
    assert by_verb["regenerate"]["contact_id"] == "ann-example-com"
    assert by_verb["cancel"]["contact_id"] == "bob-example-com"
    assert by_verb["update"]["contact_id"] == "luis-example-net"
    for record in by_verb.values():
        assert record["href"].endswith(".ics")


def test_an_exception_stays_on_its_json_line(stream: io.StringIO) -> None:
    setup_logging("info", "json", stream=stream)
    log = logging.getLogger("kit_sync")
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        log.exception("internal error in a sync cycle; retrying later")
    log.info(
        "déjà vu",
        extra={"contact_id": "ann", "path": Path("/x"), "count": 3, "counts": {"created": 2}},
    )
    records = parse_lines(stream.getvalue())
    assert len(records) == 2
    assert records[0]["level"] == "error"
    assert "Traceback" in records[0]["error"] and "ValueError: boom" in records[0]["error"]
    assert records[1] == {
        "time": records[1]["time"],
        "level": "info",
        "logger": "kit_sync",
        "message": "déjà vu",
        "contact_id": "ann",
        "path": "/x",
        "count": 3,
        "counts": {"created": 2},
    }


def test_text_logs_are_one_readable_line(stream: io.StringIO, world: World) -> None:
    setup_logging("info", "text", stream=stream)
    logging.getLogger("kit_sync").info(
        "create ann: new contact -> ann.ics", extra={"contact_id": "ann", "href": "ann.ics"}
    )
    line = stream.getvalue()
    assert line.count("\n") == 1
    assert line.split(" ", 2)[2].strip() == "INFO    create ann: new contact -> ann.ics"


def test_text_logs_leave_the_time_to_the_journal_under_systemd(
    monkeypatch: pytest.MonkeyPatch, stream: io.StringIO
) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    setup_logging("info", "text", stream=stream)
    logging.getLogger("kit_sync").warning("the backend is slow")
    assert stream.getvalue() == "WARNING the backend is slow\n"


def test_levels_and_quiet_libraries(stream: io.StringIO) -> None:
    setup_logging("warning", "json", stream=stream)
    logging.getLogger("kit_sync").info("not shown")
    logging.getLogger("urllib3.connectionpool").info("GET /dav/ Authorization: Basic xyz")
    logging.getLogger("kit_sync").warning("shown")
    assert [r["message"] for r in parse_lines(stream.getvalue())] == ["shown"]


def test_formatters_are_plain_logging_formatters() -> None:
    record = logging.LogRecord("kit_sync", logging.INFO, __file__, 1, "n=%d", (3,), None)
    assert json.loads(JsonFormatter().format(record))["message"] == "n=3"
    assert TextFormatter(timestamps=False).format(record) == "INFO    n=3"
