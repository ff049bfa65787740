"""A command that only reads never creates a database; every command says which database it uses."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from service.cli.main import main
from tests.cli.conftest import Result

READING = [
    ["requests", "list"],
    ["requests", "show", "R-1"],
    ["requests", "approve", "R-1", "--as", "admin"],
    ["audit", "verify"],
    ["audit", "export"],
    ["grants", "list"],
    ["users", "list"],
    ["policy", "history"],
    ["policy", "show"],
]


@pytest.fixture
def empty_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("AIRLOCK_DATA_DIR", "AIRLOCK_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def airlock(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str) -> Result:
    monkeypatch.setattr(sys, "argv", ["airlock", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


@pytest.mark.parametrize("args", READING, ids=" ".join)
def test_a_reading_command_in_an_empty_folder_exits_non_zero_and_creates_nothing(
    empty_folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    result = airlock(capsys, monkeypatch, *args)
    assert result.code != 0
    assert f"no Airlock database at {empty_folder / 'airlock-data' / 'airlock.db'}" in result.err
    assert "--config" in result.err and "--data-dir" in result.err
    assert "Traceback" not in result.err and result.out == ""
    assert list(empty_folder.iterdir()) == []


def test_a_missing_data_dir_is_named_as_given(
    empty_folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    result = airlock(capsys, monkeypatch, "requests", "list", "--data-dir", "elsewhere")
    assert result.code != 0
    assert f"no Airlock database at {empty_folder / 'elsewhere' / 'airlock.db'} (from --data-dir)" in result.err
    assert list(empty_folder.iterdir()) == []


def test_data_dir_reaches_the_database_the_demo_made_and_says_so(
    empty_folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    made = airlock(capsys, monkeypatch, "db", "upgrade", "--data-dir", "demo-data")
    assert made.code == 0, made.err
    created = airlock(capsys, monkeypatch, "users", "create", "ana", "--role", "approver", "--data-dir", "demo-data")
    assert created.code == 0, created.err
    listed = airlock(capsys, monkeypatch, "users", "list", "--data-dir", "demo-data")
    assert listed.code == 0 and "ana" in listed.out
    assert f"database: SQLite {empty_folder / 'demo-data' / 'airlock.db'}" in listed.err
    assert not (empty_folder / "airlock-data").exists()


def test_the_flag_beats_the_environment(
    empty_folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRLOCK_DATA_DIR", str(empty_folder / "from-env"))
    result = airlock(capsys, monkeypatch, "grants", "list", "--data-dir", "from-flag")
    assert result.code != 0 and str(empty_folder / "from-flag" / "airlock.db") in result.err
