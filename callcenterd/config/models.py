"""Strict pydantic models of callcenterd.yaml.

Every model forbids unknown keys and validates in strict mode: a number
must be written as a number (``ring_time: 15``), a string stays a string.
The YAML loader (``yaml_loader``) already keeps ``08:30``, ``no`` and
``0123`` as strings, so strict mode does not bite the admin.

Secrets (AMI secret, ESL password, API token, PostgreSQL DSN) are given as
a value, an environment variable name or a file path.  They are resolved
lazily, when a driver connects, into a :class:`pydantic.SecretStr`; their
value never reaches a repr, a log line or an error message.

Cross references (an agent's queues, a queue's overflow, skills, pbx
nodes) are checked by :func:`callcenterd.config.load.check_references`,
which knows where each key was written.  Build configs through
:func:`callcenterd.config.load_config` or ``config_from_mapping``.
"""

from __future__ import annotations

import os
import re
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    SecretStr,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from callcenterd.config.errors import ConfigError

__all__ = [
    "Config",
    "PbxNode",
    "AsteriskNode",
    "AmiConfig",
    "FastAgiConfig",
    "AsteriskContexts",
    "FreeswitchNode",
    "EslConfig",
    "EslOutboundConfig",
    "QueueConfig",
    "Overflow",
    "RelaxStep",
    "RelaxEvery",
    "RingProgressively",
    "AgentConfig",
    "CdrConfig",
    "StoreConfig",
    "ApiConfig",
    "KpiConfig",
    "LoggingConfig",
    "SystemdConfig",
    "resolve_secret",
    "STRATEGIES",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, validate_default=False)


# ----------------------------------------------------------------- scalars
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def _check_name(value: str) -> str:
    # Names end up in queue_log (pipe separated), AMI headers and URLs.
    if not _NAME_RE.fullmatch(value):
        raise ValueError(
            "names must be 1-64 characters: letters, digits, '_', '.', '-', "
            "starting with a letter or digit"
        )
    return value


def _no_control(value: str) -> str:
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ValueError("must not contain control characters (CR, LF, NUL, TAB...)")
    return value


def _int_as_str(value: Any) -> Any:
    # A secret of digits (`secret: 12345`) is still a secret string.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


Name = Annotated[str, AfterValidator(_check_name)]
Text = Annotated[str, AfterValidator(_no_control)]
Host = Annotated[str, Field(min_length=1), AfterValidator(_no_control)]
Port = Annotated[int, Field(ge=1, le=65535)]
Seconds = Annotated[float, Field(ge=0)]
PositiveSeconds = Annotated[float, Field(gt=0)]
SkillLevel = Annotated[int, Field(ge=1, le=10)]
Secret = Annotated[SecretStr, BeforeValidator(_int_as_str)]

STRATEGIES = (
    "ring-all",
    "longest-idle",
    "round-robin",
    "fewest-calls",
    "least-talk-time",
    "linear",
    "random",
    "weighted-random",
    "ring-progressively",
    "skills",
)
Strategy = Literal[
    "ring-all",
    "longest-idle",
    "round-robin",
    "fewest-calls",
    "least-talk-time",
    "linear",
    "random",
    "weighted-random",
    "ring-progressively",
    "skills",
]
# app_queue joinempty / leavewhenempty, reduced to three levels each.  The two
# keys have app_queue's opposite polarities ("yes" = join / leave):
#   join_empty:       yes = always join; no = refuse when no agent of the queue
#                     is logged in (paused agents count); strict = refuse also
#                     when every logged-in agent is paused
#   leave_when_empty: no = never leave; yes = leave when no agent is logged in;
#                     strict = leave also when every logged-in agent is paused
EmptyPolicy = Literal["yes", "no", "strict"]


# ----------------------------------------------------------------- secrets
def resolve_secret(
    value: SecretStr | None, env: str | None, file: str | None, what: str
) -> SecretStr:
    """Return the secret from whichever of value / env var / file is set.

    Called when a driver connects, not at load time, so ``callcenterd check``
    works on a machine without the production secrets.  A file's trailing
    newline is dropped.  Raises :class:`ConfigError`; the message names the
    variable or file, never the secret.
    """
    if value is not None:
        return value
    if env is not None:
        found = os.environ.get(env)
        if not found:
            raise ConfigError([f"{what}: environment variable {env} is not set or empty"])
        return SecretStr(found)
    if file is not None:
        try:
            with open(file, encoding="utf-8") as fh:
                found = fh.read().rstrip("\r\n")
        except OSError as exc:
            raise ConfigError([f"{what}: cannot read {file}: {exc.strerror}"]) from None
        if not found:
            raise ConfigError([f"{what}: {file} is empty"])
        return SecretStr(found)
    raise ConfigError([f"{what}: no secret configured"])


def _exactly_one(model: BaseModel, base: str, *, required: bool = True, why: str = "") -> None:
    given = [f for f in (base, f"{base}_env", f"{base}_file") if getattr(model, f) is not None]
    if len(given) > 1:
        raise ValueError(f"give only one of {base}, {base}_env, {base}_file (got {', '.join(given)})")
    if required and not given:
        raise ValueError(f"one of {base}, {base}_env, {base}_file is required{why}")


# ------------------------------------------------------------------- PBX
class AmiConfig(_Strict):
    """Asterisk manager interface (manager.conf)."""

    host: Host = "127.0.0.1"
    port: Port = 5038
    username: Text
    secret: Secret | None = None
    secret_env: Text | None = None
    secret_file: Text | None = None
    md5_login: bool = False
    action_timeout: PositiveSeconds = 10
    keepalive_interval: PositiveSeconds = 5
    keepalive_deadline: PositiveSeconds = 3

    @model_validator(mode="after")
    def _one_secret(self) -> AmiConfig:
        _exactly_one(self, "secret")
        return self

    def resolve_secret(self) -> SecretStr:
        return resolve_secret(self.secret, self.secret_env, self.secret_file, "AMI secret")


class FastAgiConfig(_Strict):
    """Where callcenterd listens for FastAGI from the dialplan (agi://host:port)."""

    host: Host = "127.0.0.1"
    port: Port = 4573


class AsteriskContexts(_Strict):
    """Dialplan contexts callcenterd sends legs to (see the example extensions.conf)."""

    hold: Text = "callcenterd-hold"
    agent: Text = "callcenterd-agent"


class AsteriskNode(_Strict):
    type: Literal["asterisk"]
    ami: AmiConfig
    fastagi: FastAgiConfig = Field(default_factory=FastAgiConfig)
    contexts: AsteriskContexts = Field(default_factory=AsteriskContexts)


class EslConfig(_Strict):
    """FreeSWITCH inbound event socket (event_socket.conf.xml)."""

    host: Host = "127.0.0.1"
    port: Port = 8021
    password: Secret | None = None
    password_env: Text | None = None
    password_file: Text | None = None

    @model_validator(mode="after")
    def _one_password(self) -> EslConfig:
        _exactly_one(self, "password")
        return self

    def resolve_password(self) -> SecretStr:
        return resolve_secret(self.password, self.password_env, self.password_file, "ESL password")


class EslOutboundConfig(_Strict):
    """Where callcenterd listens for the dialplan's ``socket`` application."""

    host: Host = "127.0.0.1"
    port: Port = 8084


class FreeswitchNode(_Strict):
    type: Literal["freeswitch"]
    esl: EslConfig
    outbound: EslOutboundConfig = Field(default_factory=EslOutboundConfig)


PbxNode = Annotated[Union[AsteriskNode, FreeswitchNode], Field(discriminator="type")]


# ----------------------------------------------------------------- queues
class Overflow(_Strict):
    """Where a caller goes after ``max_wait``: another queue, or a dialplan
    destination ``context,exten,priority``.  Exactly one of the two."""

    queue: Name | None = None
    destination: Text | None = None

    @model_validator(mode="after")
    def _one_target(self) -> Overflow:
        if (self.queue is None) == (self.destination is None):
            raise ValueError("give exactly one of queue or destination")
        if self.destination is not None:
            parts = self.destination.split(",")
            if len(parts) != 3 or not all(p.strip() for p in parts):
                raise ValueError("destination must be 'context,exten,priority'")
        return self


class RelaxStep(_Strict):
    """After ``after`` seconds of waiting, lower every required level by ``-min_level_delta``."""

    after: Seconds
    min_level_delta: Annotated[int, Field(le=0, ge=-9)]


class RelaxEvery(_Strict):
    """Every ``every`` seconds of waiting, lower every required level by ``step``."""

    every: PositiveSeconds
    step: Annotated[int, Field(ge=1, le=9)] = 1


def _relax_kind(value: Any) -> str | None:
    if isinstance(value, list):
        return "relax-steps"
    if isinstance(value, dict):
        return "relax-every"
    return None


SkillRelax = Annotated[
    Union[
        Annotated[list[RelaxStep], Tag("relax-steps")],
        Annotated[RelaxEvery, Tag("relax-every")],
    ],
    Discriminator(
        _relax_kind,
        custom_error_type="skill_relax",
        custom_error_message="Input should be a list of {after, min_level_delta} or {every, step}",
    ),
]


class RingProgressively(_Strict):
    """ring-progressively: ring ``start`` agents, add ``step`` more every ``every`` seconds."""

    start: Annotated[int, Field(ge=1)] = 1
    step: Annotated[int, Field(ge=1)] = 1
    every: PositiveSeconds = 15


class QueueConfig(_Strict):
    strategy: Strategy = "longest-idle"
    ring_time: PositiveSeconds = 15
    retry_delay: Seconds = 5
    wrapup_time: Seconds = 10
    talk_time_prior: PositiveSeconds = 120  # mean talk assumed for wait estimates until calls are measured
    max_wait: Seconds = 0  # 0 = unlimited
    overflow: Overflow | None = None
    max_callers: Annotated[int, Field(ge=0)] = 0  # 0 = unlimited
    join_empty: EmptyPolicy = "yes"
    leave_when_empty: EmptyPolicy = "no"
    service_level: PositiveSeconds = 20
    announce_frequency: Seconds = 30  # 0 = never
    announce_position: bool = True
    moh_class: Text = "default"
    weight: int = 0
    priority: int = 0
    skills: dict[Name, SkillLevel] = Field(default_factory=dict)
    skill_relax: SkillRelax | None = None
    ring_progressively: RingProgressively | None = None

    @field_validator("skill_relax")
    @classmethod
    def _relax_sorted(cls, value: Any) -> Any:
        if isinstance(value, list):
            afters = [step.after for step in value]
            if afters != sorted(afters):
                raise ValueError("skill_relax steps must be sorted by 'after'")
        return value

    @model_validator(mode="after")
    def _progressive_defaults(self) -> QueueConfig:
        if self.strategy == "ring-progressively" and self.ring_progressively is None:
            self.ring_progressively = RingProgressively()
        return self


# ----------------------------------------------------------------- agents
_DEVICE_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]*/[^\s/][^\s]*")


def _check_device(value: str) -> str:
    _no_control(value)
    if not _DEVICE_RE.fullmatch(value):
        raise ValueError(
            "device must look like TECH/resource, e.g. PJSIP/1001, Local/1001@agents/n, user/1001"
        )
    return value


class AgentConfig(_Strict):
    name: Text | None = None  # display name; the agent id when absent
    device: Annotated[str, AfterValidator(_check_device)]
    node: Name | None = None  # default: the only pbx node
    queues: list[Name] = Field(default_factory=list)
    skills: dict[Name, SkillLevel] = Field(default_factory=dict)
    wrapup_time: Seconds | None = None  # overrides the queue's when set
    max_missed: Annotated[int, Field(ge=0)] = 3  # 0 = never auto-pause
    busy_backoff: Seconds = 10
    max_concurrent: Annotated[int, Field(ge=1)] = 1
    penalty: Annotated[int, Field(ge=0)] = 0  # app_queue member penalty: lower rings first
    weight: int = 0  # weighted-random strategy

    @field_validator("queues")
    @classmethod
    def _unique_queues(cls, value: list[str]) -> list[str]:
        seen: set[str] = set()
        for queue in value:
            if queue in seen:
                raise ValueError(f"queue {queue!r} listed twice")
            seen.add(queue)
        return value


# ----------------------------------------------------------------- outputs
_SIZE_RE = re.compile(r"\s*([0-9]+)\s*(B|[kKMGT]i?B?|)\s*")
_SIZE_UNITS = {
    "": 1, "B": 1,
    "k": 1000, "K": 1000, "kB": 1000, "KB": 1000, "Ki": 1024, "KiB": 1024, "ki": 1024, "kiB": 1024,
    "M": 10**6, "MB": 10**6, "Mi": 2**20, "MiB": 2**20,
    "G": 10**9, "GB": 10**9, "Gi": 2**30, "GiB": 2**30,
    "T": 10**12, "TB": 10**12, "Ti": 2**40, "TiB": 2**40,
}  # fmt: skip


def _parse_size(value: Any) -> Any:
    if isinstance(value, str):
        match = _SIZE_RE.fullmatch(value)
        if not match or match.group(2) not in _SIZE_UNITS:
            raise ValueError("size must be bytes as an integer or like 64MiB, 500MB, 1GiB")
        return int(match.group(1)) * _SIZE_UNITS[match.group(2)]
    return value


def _check_mode(value: str) -> str:
    if not re.fullmatch(r"0?[0-7]{3}", value):
        raise ValueError("file_mode must be an octal string like \"0640\"")
    return value


class CdrConfig(_Strict):
    directory: Text = "/var/lib/callcenterd/cdr"
    formats: list[Literal["csv", "jsonl", "queue_log"]] = Field(
        default_factory=lambda: ["csv", "jsonl", "queue_log"]
    )
    rotate: Literal["daily", "size"] = "daily"
    max_bytes: Annotated[int, BeforeValidator(_parse_size), Field(ge=4096)] = 64 * 2**20
    fsync: Literal["always", "interval", "never"] = "interval"
    fsync_interval_ms: Annotated[int, Field(ge=1, le=60_000)] = 200
    # Call records hold caller numbers and names: nothing beyond owner and
    # group (0660) unless the admin says so.  Declared before file_mode, which
    # is validated against it.
    allow_wide_file_mode: bool = False
    file_mode: Annotated[str, AfterValidator(_check_mode)] = "0640"

    @field_validator("formats")
    @classmethod
    def _unique_formats(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("each format may be listed once")
        return value

    @field_validator("file_mode")
    @classmethod
    def _not_wider_than_0660(cls, value: str, info: ValidationInfo) -> str:
        wider = int(value, 8) & ~0o660
        if wider and not info.data.get("allow_wide_file_mode", False):
            raise ValueError(
                f"file_mode {value} grants {oct(wider)[2:].zfill(4)} beyond 0660 (call records hold "
                "caller numbers and names); set cdr.allow_wide_file_mode: true to allow it"
            )
        return value

    @property
    def file_mode_int(self) -> int:
        return int(self.file_mode, 8)


class StoreConfig(_Strict):
    # postgresql is refused, with its own message, until the backend exists:
    # it used to be accepted while nothing at all was stored.
    backend: Literal["sqlite"] = "sqlite"
    path: Text = "/var/lib/callcenterd/state.db"  # sqlite
    dsn: Secret | None = None  # postgresql; may carry a password, hence secret
    dsn_env: Text | None = None
    dsn_file: Text | None = None

    @field_validator("backend", mode="before")
    @classmethod
    def _supported_backend(cls, value: Any) -> Any:
        if value == "postgresql":
            raise ValueError("postgresql is not supported yet (nothing would be stored); use sqlite")
        return value

    @field_validator("dsn", "dsn_env", "dsn_file")
    @classmethod
    def _dsn_unused(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None and info.data.get("backend") == "sqlite":
            raise ValueError(f"{info.field_name} is only used by backend postgresql, which is not supported yet")
        return value

    def resolve_dsn(self) -> SecretStr:
        return resolve_secret(self.dsn, self.dsn_env, self.dsn_file, "store DSN")


_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


class ApiConfig(_Strict):
    host: Host = "127.0.0.1"
    port: Port = 8480
    token: Secret | None = None
    token_env: Text | None = None
    token_file: Text | None = None

    @model_validator(mode="after")
    def _token(self) -> ApiConfig:
        # No token is allowed only on loopback: anyone who reaches the API can
        # log agents out and start campaigns.
        _exactly_one(
            self, "token", required=self.host not in _LOOPBACK, why=" when host is not loopback"
        )
        return self

    @property
    def has_token(self) -> bool:
        return any(v is not None for v in (self.token, self.token_env, self.token_file))

    def resolve_token(self) -> SecretStr:
        return resolve_secret(self.token, self.token_env, self.token_file, "API token")


class KpiConfig(_Strict):
    short_abandon: Seconds = 5
    # Service level = answered within service_level / denominator:
    #   offered               all calls that entered the queue
    #   offered-minus-short   offered minus abandons shorter than short_abandon
    #   answered              answered calls only
    #   answered+abandoned    answered plus abandoned (overflows excluded)
    service_level_denominator: Literal[
        "offered", "offered-minus-short", "answered", "answered+abandoned"
    ] = "offered-minus-short"
    interval_minutes: Literal[15, 30, 60] = 15


class LoggingConfig(_Strict):
    level: Annotated[
        Literal["debug", "info", "warning", "error", "critical"],
        BeforeValidator(lambda v: v.lower() if isinstance(v, str) else v),
    ] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class SystemdConfig(_Strict):
    watchdog: bool = True


# ----------------------------------------------------------------- root
class Config(_Strict):
    """The whole daemon configuration."""

    pbx: Annotated[dict[Name, PbxNode], Field(min_length=1)]
    queues: dict[Name, QueueConfig] = Field(default_factory=dict)
    agents: dict[Name, AgentConfig] = Field(default_factory=dict)
    cdr: CdrConfig = Field(default_factory=CdrConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    kpi: KpiConfig = Field(default_factory=KpiConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    systemd: SystemdConfig = Field(default_factory=SystemdConfig)

    @model_validator(mode="after")
    def _fill_defaults(self) -> Config:
        if len(self.pbx) == 1:
            (only,) = self.pbx
            for agent in self.agents.values():
                if agent.node is None:
                    agent.node = only
        return self

    def agent_name(self, agent_id: str) -> str:
        return self.agents[agent_id].name or agent_id

    def agent_wrapup(self, agent_id: str, queue: str) -> float:
        """Wrap-up after a call from ``queue``: the agent's own, else the queue's."""
        own = self.agents[agent_id].wrapup_time
        return own if own is not None else self.queues[queue].wrapup_time
