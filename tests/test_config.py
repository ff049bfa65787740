from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from service.config import load_settings
from service.errors import ConfigInvalid

FULL = """
listen: {host: 127.0.0.1, port: 8080}
database_url: sqlite:///./data/airlock.db
redis_url: redis://127.0.0.1:6379/0
policy: ./policy.yaml
upstreams:
  imagegen:
    command: airlock
    args: [demo-upstream]
    env: {}
  remote:
    url: http://127.0.0.1:9000/mcp
    headers: {Authorization: "Bearer abc"}
    prefix: remote_
public_url: http://127.0.0.1:8080
hold: {max_wait: 50s, on_requester_gone: keep, result_retention: 24h}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "airlock.yaml"
    path.write_text(text)
    return path


def test_the_documented_config_loads_and_paths_are_relative_to_it(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, FULL))
    assert settings.upstreams["remote"].prefix == "remote_"
    assert settings.upstreams["imagegen"].args == ["demo-upstream"]
    assert settings.hold.max_wait == timedelta(seconds=50)
    assert settings.policy == tmp_path / "policy.yaml"
    assert settings.effective_database_url == f"sqlite:///{tmp_path}/data/airlock.db"


def test_empty_upstreams_are_valid(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, "upstreams: {}\n")).upstreams == {}


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRLOCK_HOLD__MAX_WAIT", "20s")
    monkeypatch.setenv("AIRLOCK_REDIS_URL", "redis://other:6379/1")
    settings = load_settings(write(tmp_path, FULL))
    assert settings.hold.max_wait == timedelta(seconds=20)
    assert settings.hold.result_retention == timedelta(hours=24)  # the file's other keys stay
    assert settings.redis_url == "redis://other:6379/1"


_IDP = "issuer: 'https://idp.example.com', client_id: airlock, client_secret: s3cret"


def test_an_oidc_provider_loads_with_its_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, f"oidc: {{providers: {{corp: {{{_IDP}}}}}, passwords: false}}\n"))
    corp = settings.oidc.providers["corp"]
    assert corp.issuer == "https://idp.example.com" and corp.default_role == "viewer"
    assert corp.groups_claim == "groups" and not corp.create_users and not corp.match_verified_email
    assert corp.allowed_domains == []
    assert settings.oidc.passwords is False


def test_an_issuer_is_kept_exactly_as_configured_and_domains_are_lower_cased(tmp_path: Path) -> None:
    text = "oidc: {providers: {auth0: {issuer: 'https://corp.eu.auth0.com/', client_id: a, client_secret: s,"
    settings = load_settings(write(tmp_path, text + " allowed_domains: [' Corp.COM ']}}}\n"))
    auth0 = settings.oidc.providers["auth0"]
    assert auth0.issuer == "https://corp.eu.auth0.com/" and auth0.allowed_domains == ["corp.com"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("listen: {port: 99999}\n", "listen.port"),
        ("upstreams: {x: {args: [a]}}\n", "upstreams.x: give either command"),
        ("hold: {max_wait: soon}\n", "hold.max_wait"),
        ("hold: {max_wait: 0}\n", "hold.max_wait: a duration must be positive"),
        ("hold: {replay_window: -1m}\n", "hold.replay_window"),
        ("database_url: mysql://x\n", "database_url: database_url must be"),
        ("colour: blue\n", "colour: unknown key"),
        ("listen: [1, 2\n", "not valid YAML"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("oidc: {passwords: false}\n", "oidc: passwords: false needs at least one provider"),
        (f"oidc: {{providers: {{corp: {{{_IDP}, issuer: 'http://idp.example.com'}}}}}}\n", "issuer must be an https"),
        (f"oidc: {{providers: {{corp: {{{_IDP}, default_role: owner}}}}}}\n", "oidc.providers.corp.default_role"),
        (f"oidc: {{providers: {{corp: {{{_IDP}, roles: {{boss: [g]}}}}}}}}\n", "oidc.providers.corp.roles.boss"),
        (f"oidc: {{providers: {{corp: {{{_IDP}, scopes: [email]}}}}}}\n", "scopes must include openid"),
        (f"oidc: {{providers: {{corp: {{{_IDP}, allowed_domains: ['@corp.com']}}}}}}\n", "is not a domain name"),
        (f"oidc: {{providers: {{corp: {{{_IDP}, allowed_domains: ['b\u00fccher.de']}}}}}}\n", "is not a domain name"),
        (f"oidc: {{providers: {{corp: {{{_IDP}, client_secret: ' '}}}}}}\n", "client_secret is empty"),
        (f"oidc: {{providers: {{corp: {{{_IDP}, colour: blue}}}}}}\n", "oidc.providers.corp.colour: unknown key"),
        ("oidc: {providers: {corp: {issuer: 'https://idp.example.com'}}}\n", "oidc.providers.corp.client_id"),
        (f"oidc: {{providers: {{Corp!: {{{_IDP}}}}}}}\n", "provider name 'Corp!'"),
        (f"oidc: {{providers: {{a: {{{_IDP}}}, b: {{{_IDP}}}}}}}\n", "providers 'a' and 'b' have the same issuer"),
    ],
)
def test_invalid_config_names_the_key(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigInvalid) as info:
        load_settings(write(tmp_path, text))
    assert expected in info.value.message
    assert "\n" not in info.value.message


def test_a_missing_named_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigInvalid, match="cannot read config"):
        load_settings(tmp_path / "nope.yaml")


def test_slack_settings_come_from_flat_environment_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRLOCK_SLACK_BOT_TOKEN", "xoxb-flat")
    monkeypatch.setenv("AIRLOCK_SLACK_SIGNING_SECRET", "shh")
    monkeypatch.setenv("AIRLOCK_SLACK_CHANNEL", "#approvals")
    monkeypatch.setenv("AIRLOCK_SLACK_API_BASE_URL", "http://127.0.0.1:9/api/")
    settings = load_settings(write(tmp_path, "slack: {channel: '#from-file', app_token: xapp-file}\n"))
    assert settings.slack.bot_token is not None and settings.slack.bot_token.get_secret_value() == "xoxb-flat"
    assert settings.slack.channel == "#approvals"  # the environment wins over the file
    assert settings.slack.app_token is not None and settings.slack.app_token.get_secret_value() == "xapp-file"
    assert settings.slack.api_base_url == "http://127.0.0.1:9/api/"
    assert settings.slack.enabled


def test_the_nested_slack_variable_wins_over_the_flat_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRLOCK_SLACK_CHANNEL", "#flat")
    monkeypatch.setenv("AIRLOCK_SLACK__CHANNEL", "#nested")
    settings = load_settings(write(tmp_path, "upstreams: {}\n"))
    assert settings.slack.channel == "#nested"
    assert not settings.slack.enabled


@pytest.mark.parametrize("off", [0, "0", "0s"])
def test_a_replay_window_of_zero_turns_replays_off(tmp_path: Path, off: object) -> None:
    settings = load_settings(write(tmp_path, f"hold: {{replay_window: {off!r}}}\n".replace("'", '"')))
    assert settings.hold.replay_window == timedelta(0)


def test_break_glass_turns_passwords_back_on_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/sign-in.md#break-glass: the environment wins over the file, and the file's providers stay."""
    config = write(tmp_path, f"oidc: {{providers: {{corp: {{{_IDP}}}}}, passwords: false}}\n")
    monkeypatch.setenv("AIRLOCK_OIDC__PASSWORDS", "true")
    settings = load_settings(config)
    assert settings.oidc.passwords is True and list(settings.oidc.providers) == ["corp"]
