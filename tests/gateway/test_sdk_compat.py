"""The one module that touches the MCP SDK's private parts refuses an SDK it was not written for, and its check
agrees with the dependency range a fresh install resolves."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from service.gateway.sdk_compat import PRIVATES_TO_RECHECK, SDK_SERIES, UnsupportedSdk, check_sdk_version

PYPROJECT = Path(__file__).parents[2] / "pyproject.toml"


@pytest.mark.parametrize("found", ["2.3.0", "2.3.7", "2.3.12rc1"])
def test_the_series_it_was_written_for_is_accepted(found: str) -> None:
    check_sdk_version(found)


@pytest.mark.parametrize("found", ["2.4.0", "2.2.9", "3.3.0", "1.23.0", "2", "not a version"])
def test_another_sdk_fails_loudly_naming_what_to_recheck(found: str) -> None:
    with pytest.raises(UnsupportedSdk) as refused:
        check_sdk_version(found)
    message = str(refused.value)
    assert found in message
    assert "2.3.x" in message
    for private in ("_dispatcher", "_idle_timeout", "_requests_in_flight", "_admit_session", "_check_content_type"):
        assert private in message
    assert all(item in message for item in PRIVATES_TO_RECHECK)


def test_the_installed_sdk_is_the_one_checked_for() -> None:
    check_sdk_version(version("mcp"))


@pytest.mark.parametrize("package", ["mcp", "mcp-types"])
def test_the_dependency_range_allows_exactly_the_checked_series(package: str) -> None:
    """A patch release installs and passes the check; the next minor release is not installed at all."""
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    (requirement,) = [Requirement(d) for d in dependencies if Requirement(d).name == package]
    major, minor = SDK_SERIES
    for allowed in (f"{major}.{minor}.0", f"{major}.{minor}.1", f"{major}.{minor}.99"):
        assert requirement.specifier.contains(allowed), allowed
        check_sdk_version(allowed)
    for refused in (f"{major}.{minor + 1}.0", f"{major}.{minor - 1}.99", f"{major + 1}.0.0"):
        assert not requirement.specifier.contains(refused), refused
        with pytest.raises(UnsupportedSdk):
            check_sdk_version(refused)
