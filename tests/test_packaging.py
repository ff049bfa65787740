"""What a user installs: the wheel carries everything Airlock needs to run outside the checkout, its metadata names
every package Airlock imports, and the container installs that wheel and nothing of the source tree.

(The whole install, from a registry into a fresh virtualenv, is `make smoke`, a step of CI: tests/install/.)
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's instructions, stage by stage, as (INSTRUCTION, arguments) with continuations joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        instruction, _, arguments = line.strip().partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        stages[-1].append((instruction.upper(), arguments.strip()))
    return stages


def build_wheel(source: Path, into: Path) -> Path:
    """The wheel, built offline with this venv's own build backend."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(into), str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = into.glob("airlock-*.whl")
    return wheel


@pytest.fixture(scope="module")
def docker_built_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel as the Dockerfile's build stage makes it: from a folder holding only what that stage copies."""
    build, _runtime = dockerfile_stages()
    context = tmp_path_factory.mktemp("docker-context")
    for instruction, arguments in build:
        if instruction == "COPY":
            *sources, _target = arguments.split()
            for source in sources:
                path = ROOT / source
                if path.is_dir():
                    shutil.copytree(path, context / source, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy(path, context / source)
    return build_wheel(context, tmp_path_factory.mktemp("dist"))


def test_the_container_installs_the_built_wheel_and_runs_as_a_user() -> None:
    build, runtime = dockerfile_stages()
    assert any(i == "RUN" and "pip wheel" in a for i, a in build)
    copies = [a for i, a in runtime if i == "COPY"]
    assert copies and all(a.startswith("--from=build ") for a in copies)  # the wheel, no source tree
    (install,) = [a for i, a in runtime if i == "RUN" and "pip install" in a]
    assert re.search(r"pip install [^&]*\.whl", install) and " -e " not in install
    users = [a for i, a in runtime if i == "USER"]
    assert users and users[-1] not in ("root", "0")
    (command,) = [a for i, a in runtime if i == "CMD"]
    assert command == '["airlock", "serve", "--config", "/etc/airlock/airlock.yaml"]'  # what deploy/ mounts


def test_the_wheel_carries_the_migrations_templates_and_data(docker_built_wheel: Path) -> None:
    names = set(zipfile.ZipFile(docker_built_wheel).namelist())
    migrations = {f"service/db/migrations/versions/{p.name}" for p in (ROOT / "alembic" / "versions").glob("*.py")}
    assert migrations and migrations <= names
    assert {"service/db/migrations/env.py", "service/db/migrations/script.py.mako"} <= names
    for folder in ("webui/templates", "webui/static"):
        assert {f"{folder}/{p.name}" for p in (ROOT / folder).iterdir() if p.is_file()} <= names
    assert {"service/demo/policy.yaml", "service/policy/data/image_gen_mcp.yaml", "service/py.typed"} <= names


def test_the_installed_wheel_migrates_a_database_outside_the_checkout(docker_built_wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(docker_built_wheel)],
        check=True,
        capture_output=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    env.pop("AIRLOCK_DATA_DIR", None)
    where = subprocess.run(
        [sys.executable, "-c", "from service.db.migrate import migrations_folder; print(migrations_folder())"],
        cwd=elsewhere, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert Path(where.stdout.strip()).is_relative_to(target)
    upgraded = subprocess.run(
        [sys.executable, "-m", "service.cli.main", "db", "upgrade", "--data-dir", "data"],
        cwd=elsewhere, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert upgraded.returncode == 0, upgraded.stderr
    assert (elsewhere / "data" / "airlock.db").stat().st_size > 0


def _imported_top_level_modules() -> set[str]:
    found: set[str] = set()
    for path in [*(ROOT / "service").rglob("*.py"), *(ROOT / "webui").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.partition(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.partition(".")[0])
    return found - set(sys.stdlib_module_names) - {"service", "webui"}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_imported_package_is_a_declared_runtime_dependency(docker_built_wheel: Path) -> None:
    metadata = next(n for n in zipfile.ZipFile(docker_built_wheel).namelist() if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(docker_built_wheel).read(metadata).decode()
    declared = {
        _canonical(re.split(r"[\s<>=!~;\[]", line.removeprefix("Requires-Dist: "), maxsplit=1)[0])
        for line in text.splitlines()
        if line.startswith("Requires-Dist: ") and "extra ==" not in line
    }
    distributions = importlib.metadata.packages_distributions()
    missing = {
        module: distributions.get(module)
        for module in _imported_top_level_modules()
        if not {_canonical(d) for d in distributions.get(module, [module])} & declared
    }
    assert missing == {}, f"imported but not in [project.dependencies]: {missing}"
    assert text.count("Requires-Dist: websockets") == 1
