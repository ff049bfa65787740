"""Every command, argument and option of `airlock` says in one line what it is for, and `--help` prints no type
noise such as "<bool>" beside a flag."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from service.cli.main import app


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(typer.main.get_command(app)))


def _label(path: tuple[str, ...]) -> str:
    return " ".join(("airlock", *path))


def test_the_walk_reaches_every_group_and_leaf() -> None:
    names = {_label(path) for path, _ in COMMANDS}
    assert {"airlock requests approve", "airlock policy simulate", "airlock db upgrade", "airlock clients"} <= names
    assert len(names) >= 25


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[_label(p) for p, _ in COMMANDS])
def test_each_command_and_parameter_has_a_description(path: tuple[str, ...], command: Any) -> None:
    assert (command.help or "").strip(), f"{_label(path)} has no description"
    undescribed = [param.name for param in command.params if not (getattr(param, "help", None) or "").strip()]
    assert not undescribed, f"{_label(path)}: no help for {undescribed}"


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[_label(p) for p, _ in COMMANDS])
def test_help_shows_descriptions_and_no_bool_noise(path: tuple[str, ...], command: Any) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    assert "--help  " in result.output or "--help " in result.output
    first_line = (command.help or "").strip().splitlines()[0]
    assert first_line[:40] in " ".join(result.output.split())
    for param in command.params:
        shown = " ".join(param.help.split())[:40]
        assert shown in " ".join(result.output.split()), f"{_label(path)} --help lacks {param.name}'s description"
