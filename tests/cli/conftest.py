"""Shared fixtures for CLI tests: a config on the test database, and the real entry point run in-process."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest
from sqlalchemy import Engine

from service.cli.main import main

DEMO_POLICY = Path(__file__).parents[1] / "policy" / "fixtures" / "airlock-demo.yaml"


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def config(engine: Engine, tmp_path: Path) -> Path:
    path = tmp_path / "airlock.yaml"
    url = engine.url.render_as_string(hide_password=False)
    path.write_text(f"database_url: {url}\ndata_dir: {tmp_path}/data\npolicy: {DEMO_POLICY}\nupstreams: {{}}\n")
    return path


class Invoke(Protocol):
    def __call__(self, *args: str, with_config: bool = True) -> Result: ...


@pytest.fixture
def run(config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Invoke:
    def invoke(*args: str, with_config: bool = True) -> Result:
        argv = ["airlock", *args, *(["--config", str(config)] if with_config else [])]
        monkeypatch.setattr(sys, "argv", argv)
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke
