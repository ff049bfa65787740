"""Configuration: one Settings class, read from airlock.yaml and from AIRLOCK_* environment variables.

The environment wins over the file, so a deployment can keep secrets out of it (AIRLOCK_SECRET_KEY,
AIRLOCK_DATABASE_URL, ...; nested keys use a double underscore: AIRLOCK_HOLD__MAX_WAIT=30s).
Relative paths in the file are read relative to the file's own folder.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from service.durations import parse_duration
from service.errors import ConfigInvalid
from service.oauth.client_metadata import ClientMetadataSettings
from service.oidc.config import OIDCSettings

DEFAULT_CONFIG_FILE = Path("airlock.yaml")
DEFAULT_DATA_DIR = Path("airlock-data")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UpstreamConfig(_Section):
    """Either a stdio child (command, args, env, cwd) or a streamable HTTP server (url, headers)."""

    command: str | None = None
    args: list[str] = []
    env: dict[str, str] = {}
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = {}
    prefix: str = ""

    @model_validator(mode="after")
    def _one_transport(self) -> UpstreamConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError("give either command (a stdio child) or url (streamable HTTP)")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return self


class ListenConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    forwarded_allow_ips: list[str] = ["127.0.0.1"]
    """The proxies whose X-Forwarded-For names the client (uvicorn's setting). Sign-in throttling counts failures per
    client address: behind a load balancer that is not on this host, list it, or "*" when nothing else can reach
    Airlock, and let it set the header to the address it sees (deploy/nginx.conf)."""


def _duration(value: Any) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ValueError(str(exc)) from None


def _duration_or_off(value: Any) -> timedelta:
    """A duration where 0 (or "0s") means "off"."""
    if value in (0, "0", "0s") and not isinstance(value, bool):
        return timedelta(0)
    return _duration(value)


class HoldConfig(_Section):
    max_wait: timedelta = timedelta(seconds=50)
    on_requester_gone: Literal["keep", "cancel"] = "keep"
    result_retention: timedelta = timedelta(hours=24)
    pending_cap: int = Field(10, ge=1)
    client_budgets: dict[str, timedelta] = {}
    replay_window: timedelta = timedelta(minutes=10)
    """How long after a held call's result was first delivered the same call (same grant, tool and original
    arguments) gets that stored result again instead of a new request; 0 turns replays off."""

    _durations = field_validator("max_wait", "result_retention", mode="before")(_duration)
    _window = field_validator("replay_window", mode="before")(_duration_or_off)

    @field_validator("client_budgets", mode="before")
    @classmethod
    def _budgets(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: _duration(v) for k, v in value.items()}
        return value


class SlackConfig(_Section):
    """Slack is on when bot_token is set; Socket Mode when app_token is set too (no public URL needed)."""

    bot_token: SecretStr | None = None
    signing_secret: SecretStr | None = None
    app_token: SecretStr | None = None
    channel: str | None = None
    api_base_url: str = "https://slack.com/api/"
    reject_presets: list[str] = ["Too expensive", "Not needed now", "Wrong arguments"]
    match_email: bool = False
    """Map a Slack user without a linked Airlock user by the e-mail Slack has for them (users.info)."""

    @property
    def enabled(self) -> bool:
        return self.bot_token is not None and bool(self.bot_token.get_secret_value().strip())


class _FlatSlackEnvironment(PydanticBaseSettingsSource):
    """AIRLOCK_SLACK_BOT_TOKEN and friends, beside the nested AIRLOCK_SLACK__BOT_TOKEN: one line in a shell is
    enough to try `airlock demo` with a real workspace."""

    _KEYS = ("bot_token", "signing_secret", "app_token", "channel", "api_base_url")

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        found: dict[str, str] = {}
        for key in self._KEYS:
            value = os.environ.get(f"AIRLOCK_SLACK_{key.upper()}")
            if value is not None:
                found[key] = value
        return {"slack": found} if found else {}


class SignInConfig(_Section):
    """Failed web sign-ins counted per username and per client address; past either limit within the window, sign-in
    is refused until the oldest failure leaves the window."""

    failures_per_username: int = Field(5, ge=1)
    failures_per_address: int = Field(20, ge=1)
    window: timedelta = timedelta(minutes=15)

    _durations = field_validator("window", mode="before")(_duration)


class OAuthConfig(_Section):
    """OAuth 2.1 for agents that cannot paste a grant token (Claude's connectors, ChatGPT): Airlock is the protected
    resource and its own authorization server (docs/security.md). Off unless `issuer` is set."""

    issuer: str | None = None
    """The public base URL agents reach Airlock at ("https://airlock.example.com"): the authorization server's
    issuer, and the base of every resource (`<issuer>/mcp`, `<issuer>/mcp/<upstream>`). https, or http on loopback."""
    access_token_ttl: timedelta = timedelta(hours=1)
    refresh_token_ttl: timedelta = timedelta(days=30)
    code_ttl: timedelta = timedelta(seconds=60)
    consent_ttl: timedelta = timedelta(minutes=10)
    """How long a started authorization waits for the person to consent."""
    grant_creator_role: Literal["admin", "approver", "viewer"] = "admin"
    """Who may create a new grant on the consent page instead of picking one they own."""
    registrations_per_address: int = Field(20, ge=1)
    """Dynamic Client Registrations (POST /register) accepted from one client address per `registration_window`;
    past it, /register answers 429 until the oldest leaves the window (service/oauth/registration.py)."""
    registration_window: timedelta = timedelta(hours=1)
    registration_max_bytes: int = Field(16 * 1024, ge=1024, le=1024 * 1024)
    """The largest registration request read (a client's metadata, RFC 7591); a larger one is refused with 413
    before it is all read. Real clients send well under 2 KiB."""
    client_metadata: ClientMetadataSettings = ClientMetadataSettings()
    """How client_ids that are https URLs are fetched (Client ID Metadata Documents): size and time limits, cache
    age, and the loopback switch that only tests may turn on (service/oauth/client_metadata.py)."""

    _durations = field_validator(
        "access_token_ttl", "refresh_token_ttl", "code_ttl", "consent_ttl", "registration_window", mode="before"
    )(_duration)

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        parts = urlsplit(value)
        loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
        if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
            raise ValueError("issuer must be an https URL (http only on localhost)")
        if parts.query or parts.fragment or not parts.netloc:
            raise ValueError("issuer is a base URL without query or fragment")
        return value

    @property
    def enabled(self) -> bool:
        return self.issuer is not None


class CountersConfig(_Section):
    fail_open: bool = False
    redis_prefix: str = "airlock:ctr:"
    """Key prefix in Redis: replicas of one deployment share it; deployments sharing a Redis must not."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="AIRLOCK_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    data_dir: Path = DEFAULT_DATA_DIR
    database_url: str | None = None
    redis_url: str | None = None
    policy: Path | None = None
    upstreams: dict[str, UpstreamConfig] = {}
    listen: ListenConfig = ListenConfig()
    public_url: str | None = None
    allowed_hosts: list[str] = []
    replica_name: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")
    """Set on each replica behind a load balancer: 2025-era session ids start with it ("a.3f9c..."), so the balancer
    can route a session's requests to the replica that holds it (deploy/nginx.conf)."""
    hold: HoldConfig = HoldConfig()
    slack: SlackConfig = SlackConfig()
    counters: CountersConfig = CountersConfig()
    sign_in: SignInConfig = SignInConfig()
    oauth: OAuthConfig = OAuthConfig()
    oidc: OIDCSettings = OIDCSettings()
    """OpenID Connect sign-in to the web UI, and whether local passwords still sign in (docs/sign-in.md)."""
    secret_key: SecretStr | None = None
    prices: dict[str, Any] = {}
    max_request_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    fast_path: bool = True
    """Serve tools/call on established sessions without the SDK's per-request machinery (gateway/direct.py).
    Off, every request goes through the SDK: the same answers, at more CPU per call (the tests run both ways)."""
    upstream_call_timeout: timedelta = timedelta(minutes=5)
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    _timeouts = field_validator("upstream_call_timeout", mode="before")(_duration)

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:")):
            raise ValueError("database_url must be sqlite:///PATH or postgresql://...")
        return value

    @field_validator("upstreams")
    @classmethod
    def _upstream_names(cls, value: dict[str, UpstreamConfig]) -> dict[str, UpstreamConfig]:
        for name in value:
            if not name or not name.replace("-", "").replace("_", "").isalnum():
                raise ValueError(f"upstream name {name!r} may use letters, digits, - and _ only")
        return value

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'airlock.db').as_posix()}"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's values arrive as init kwargs (see load_settings); the environment overrides them.
        return (env_settings, _FlatSlackEnvironment(settings_cls), init_settings)


def _resolve_relative(data: dict[str, Any], base: Path) -> dict[str, Any]:
    for key in ("data_dir", "policy"):
        value = data.get(key)
        if isinstance(value, str) and not Path(value).is_absolute():
            data[key] = str(base / value)
    url = data.get("database_url")
    if isinstance(url, str) and url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        relative = url.removeprefix("sqlite:///")
        if relative and relative != ":memory:":
            data["database_url"] = f"sqlite:///{(base / relative).as_posix()}"
    return data


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ConfigInvalid(f"cannot read config {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigInvalid(f"config {path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigInvalid(f"config {path}: the top level must be a mapping of keys")
    return _resolve_relative(data, path.resolve().parent)


def load_settings(config_path: Path | None = None, **overrides: Any) -> Settings:
    """Read the config file (when there is one) and the environment.

    With no path, ./airlock.yaml is used when it exists; otherwise defaults (the demo's data folder).
    Raises ConfigInvalid naming each key that is wrong and how.
    """
    data: dict[str, Any] = {}
    source = "environment"
    if config_path is not None:
        data = read_config_file(config_path)
        source = str(config_path)
    elif DEFAULT_CONFIG_FILE.exists():
        data = read_config_file(DEFAULT_CONFIG_FILE)
        source = str(DEFAULT_CONFIG_FILE)
    data.update(overrides)
    try:
        return Settings(**data)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            key = ".".join(str(part) for part in error["loc"]) or "(top level)"
            message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
            lines.append(f"{key}: {str(message).removeprefix('Value error, ')}")
        raise ConfigInvalid(f"invalid config ({source}): " + "; ".join(lines)) from None
