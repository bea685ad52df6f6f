"""Campaign files: ``config/campaigns/*.yaml``, one outbound campaign each.

Validated like the main config (strict pydantic, unknown keys refused, every
error ``file:line: key.path: problem``), checked against the main
:class:`~callcenterd.config.models.Config` (queue, skills, pbx nodes), then
converted into the pure :class:`~callcenterd.core.campaigns.model.CampaignSpec`
plus the I/O-side pieces the spec does not carry (:class:`CampaignConfig`:
DNC file paths, the list's column mapping, the dial string of every node).

    from callcenterd.config.campaigns import load_campaigns, campaigns_dir
    campaigns = load_campaigns(campaigns_dir(config_path), config)

Every key, with its default, is documented in ``config/examples/campaign.yaml``
and ``docs/campaigns.md``.
"""

from __future__ import annotations

import itertools
import os
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, time
from pathlib import Path
from typing import Annotated, Any, Literal

import holidays as holidays_pkg
import phonenumbers
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from callcenterd.config.errors import ConfigError
from callcenterd.config.load import _data_path, _render
from callcenterd.config.models import Config, Name, SkillLevel, _check_name
from callcenterd.config.yaml_loader import KeyPath, YamlError, load_yaml
from callcenterd.core.campaigns.model import (
    AttemptOutcome,
    CallingWindows,
    CampaignSpec,
    DayWindow,
    DialMode,
    Disposition,
    MachineAction,
    RetryRule,
)
from callcenterd.pbx.api import UnsafeValue, check_safe

__all__ = [
    "BUILTIN_DISPOSITIONS",
    "CampaignConfig",
    "CampaignFile",
    "ListMapping",
    "campaigns_dir",
    "load_campaign_file",
    "load_campaigns",
    "parse_duration",
    "render_dial_string",
]

CAMPAIGNS_DIR = "campaigns"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_WINDOW = (time(8, 0), time(21, 0))
MIN_RING_S = 15.0  # regulators' minimum ring time before giving up
MAX_ABANDON_AFTER_S = 2.0  # a person who answered hears an agent (or the message) within 2 s
MAX_ABANDON_CAP = 0.03  # 3 %: the legal ceiling (Ofcom, TCPA safe harbour)
MIN_DROP_REDIAL_GUARD_S = 72 * 3600.0  # no redial of a dropped number within 72 h
TEMPLATE_PLACEHOLDERS = ("number", "e164")

BUILTIN_DISPOSITIONS: Mapping[str, Disposition] = {
    "sale": Disposition("sale", final=True),
    "callback": Disposition("callback", final=False, callback=True),
    "not-interested": Disposition("not-interested", final=True),
    "dnc": Disposition("dnc", final=True, dnc=True),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, validate_default=False)


# ----------------------------------------------------------------- scalars
_DURATION_RE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([smhd]?)\s*")
_UNIT_S = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any) -> Any:
    """``90``, ``90s``, ``30m``, ``2h``, ``3d`` -> seconds (float).  Other
    types pass through for pydantic to refuse."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        match = _DURATION_RE.fullmatch(value)
        if not match:
            raise ValueError("a duration is seconds, or a number with s, m, h or d (30m, 2h)")
        return float(match.group(1)) * _UNIT_S[match.group(2)]
    return value


def _parse_retry(value: Any) -> Any:
    if value == "never":
        return value
    if isinstance(value, str) and not _DURATION_RE.fullmatch(value):
        raise ValueError("a retry delay is 'never', seconds, or like 30m, 2h, 1d")
    return parse_duration(value)


def _parse_cap(value: Any) -> Any:
    if isinstance(value, str):
        match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*%\s*", value)
        if not match:
            raise ValueError("the abandon cap is a percentage like '3%' or a fraction like 0.03")
        return float(match.group(1)) / 100.0
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _check_cap(value: float) -> float:
    if not 0.0 < value <= MAX_ABANDON_CAP + 1e-12:
        raise ValueError(
            f"the abandon cap must be above 0 and at most 3% (0.03), the legal limit; got {value:.4g}"
        )
    return value


def _parse_hhmm(value: Any) -> Any:
    if isinstance(value, str):
        match = re.fullmatch(r"([01][0-9]|2[0-4]):([0-5][0-9])", value.strip())
        if not match:
            raise ValueError('a time of day is "HH:MM", 00:00 to 24:00')
        hour, minute = int(match.group(1)), int(match.group(2))
        if hour == 24:
            if minute:
                raise ValueError('a time of day is "HH:MM", 00:00 to 24:00')
            return time.max  # end of the day (ends are exclusive)
        return time(hour, minute)
    return value


def _parse_date(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            raise ValueError("a date is YYYY-MM-DD, e.g. 2026-12-24") from None
    return value


_PROMPT_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]{0,127}")


def _check_prompt(value: str) -> str:
    # A prompt reaches Playback() / playback as an argument: no separators, no spaces.
    if not _PROMPT_RE.fullmatch(value) or ".." in value:
        raise ValueError(
            "a prompt is a sound file name without extension: letters, digits, '_', '-', '.', '/' "
            "(no spaces, no '..'), e.g. custom/abandon"
        )
    return value


def _check_caller_number(value: str) -> str:
    if not re.fullmatch(r"\+?[0-9]{2,20}", value):
        raise ValueError("caller ID number must be digits, optionally with a leading '+'")
    return value


def _check_caller_name(value: str) -> str:
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value) or any(ch in value for ch in '"<>'):
        raise ValueError("caller ID name must not contain control characters, '\"', '<' or '>'")
    if len(value) > 64:
        raise ValueError("caller ID name is at most 64 characters")
    return value


def _no_ctl(value: str) -> str:
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ValueError("must not contain control characters")
    return value


def render_dial_string(template: str, e164: str) -> str:
    """The dial string for one lead: ``{number}`` is the E.164 digits without
    '+', ``{e164}`` the number with '+'.  Refuses a result that could inject
    protocol syntax (``check_safe``) -- it cannot, for an E.164 number."""
    rendered = template.format(number=e164.lstrip("+"), e164=e164)
    check_safe(rendered, "dial string")
    return rendered


def _check_template(value: str) -> str:
    try:
        parts = list(string.Formatter().parse(value))
    except ValueError:
        raise ValueError(
            "unbalanced '{' or '}' in the dial template (write '{{' / '}}' for literal braces)"
        ) from None
    used = []
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in TEMPLATE_PLACEHOLDERS or spec or conversion:
            shown = "{" + name + ("!" + conversion if conversion else "") + (":" + spec if spec else "") + "}"
            raise ValueError(f"unknown placeholder {shown}: only {{number}} and {{e164}} are allowed")
        used.append(name)
    if not used:
        raise ValueError("the dial template must contain {number} or {e164}")
    try:
        rendered = render_dial_string(value, "+15555550123")
    except UnsafeValue as exc:
        raise ValueError(str(exc)) from None
    if any(ch.isspace() for ch in rendered):
        raise ValueError("the dial template must not contain spaces")
    if "/" not in rendered:
        raise ValueError('the dial template must name a technology, e.g. "PJSIP/{number}@trunk"')
    return value


Duration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]
RetryDelay = Annotated[float | Literal["never"], BeforeValidator(_parse_retry)]
Prompt = Annotated[str, AfterValidator(_check_prompt)]
TimeOfDay = Annotated[time, BeforeValidator(_parse_hhmm)]
Date = Annotated[date, BeforeValidator(_parse_date)]
Template = Annotated[str, AfterValidator(_check_template)]
ColumnName = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(_no_ctl)]


# ----------------------------------------------------------------- sections
class PoolConfig(_Strict):
    """The agents who take the answered calls: a queue's agents, optionally
    only those with the given skills."""

    queue: Name
    skills: dict[Name, SkillLevel] = Field(default_factory=dict)


class CallerIdConfig(_Strict):
    number: Annotated[str, AfterValidator(_check_caller_number)]
    name: Annotated[str, AfterValidator(_check_caller_name)] = ""


def _template_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "one"
    if isinstance(value, dict):
        return "per-node"
    return None


DialTemplate = Annotated[
    Annotated[Template, Tag("one")] | Annotated[dict[Name, Template], Tag("per-node")],
    Discriminator(
        _template_kind,
        custom_error_type="dial_template",
        custom_error_message="Input should be a dial string or a mapping of pbx node -> dial string",
    ),
]


class DialConfig(_Strict):
    node: Name | None = None  # the node that dials; default the only one / the first of template
    template: DialTemplate


class Interval(_Strict):
    start: TimeOfDay
    end: TimeOfDay

    @model_validator(mode="after")
    def _ordered(self) -> Interval:
        if self.start == time.max:
            raise ValueError("a window cannot start at 24:00")
        if self.end <= self.start:
            raise ValueError("end must be after start (a window cannot cross midnight: split it in two)")
        return self


def _day_rule(value: Any) -> Any:
    if value == "closed":
        return []
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return value
    raise ValueError("a day rule is 'closed', {start, end}, or a list of {start, end}")


def _no_overlap(value: list[Interval]) -> list[Interval]:
    ordered = sorted(value, key=lambda iv: iv.start)
    for before, after in itertools.pairwise(ordered):
        if after.start < before.end:
            raise ValueError("the windows of one day overlap")
    return ordered


DayRule = Annotated[list[Interval], BeforeValidator(_day_rule), AfterValidator(_no_overlap)]


class HolidaysConfig(_Strict):
    country: str
    subdiv: str | None = None

    @field_validator("country")
    @classmethod
    def _known_country(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Z]{2}", value) or value not in holidays_pkg.list_supported_countries():
            raise ValueError(
                f"unknown holiday country {value!r}: an ISO 3166 alpha-2 code the holidays package "
                "knows, e.g. US, GB, FR"
            )
        return value

    @field_validator("subdiv")
    @classmethod
    def _known_subdiv(cls, value: str | None, info: ValidationInfo) -> str | None:
        country = info.data.get("country")
        if value is None or country is None:
            return value
        try:
            holidays_pkg.country_holidays(country, subdiv=value)
        except NotImplementedError:
            known = holidays_pkg.list_supported_countries().get(country, [])
            hint = f" (known: {', '.join(known[:20])}{', ...' if len(known) > 20 else ''})" if known else ""
            raise ValueError(f"{country} has no subdivision {value!r}{hint}") from None
        return value


class WindowsConfig(_Strict):
    """Calling windows in the lead's local time.  Default 08:00-21:00 every
    day; ``weekdays`` (mon-fri) and ``weekend`` (sat, sun) replace it; a
    per-day key replaces both for that day."""

    weekdays: DayRule | None = None
    weekend: DayRule | None = None
    mon: DayRule | None = None
    tue: DayRule | None = None
    wed: DayRule | None = None
    thu: DayRule | None = None
    fri: DayRule | None = None
    sat: DayRule | None = None
    sun: DayRule | None = None
    holidays: HolidaysConfig | None = None
    closed_dates: list[Date] = Field(default_factory=list)

    def week(self) -> tuple[tuple[DayWindow, ...], ...]:
        """Seven day rules, Monday first."""
        default = [Interval.model_construct(start=DEFAULT_WINDOW[0], end=DEFAULT_WINDOW[1])]
        out = []
        for index, day in enumerate(DAYS):
            rule = getattr(self, day)
            if rule is None:
                rule = self.weekdays if index < 5 else self.weekend
            if rule is None:
                rule = default
            out.append(tuple(DayWindow(iv.start, iv.end) for iv in rule))
        return tuple(out)


class RetryConfig(_Strict):
    """Delay before the next attempt, per outcome, or ``never``."""

    busy: RetryDelay = 15 * 60.0
    no_answer: RetryDelay = Field(2 * 3600.0, alias="no-answer")
    congestion: RetryDelay = 10 * 60.0
    machine: RetryDelay = 4 * 3600.0
    failed: RetryDelay = "never"
    dropped: RetryDelay = 72 * 3600.0
    hungup: RetryDelay = 2 * 3600.0
    max_attempts: Annotated[int, Field(ge=1)] = 5
    max_attempts_30d: Annotated[int, Field(ge=1)] = 10

    @field_validator("busy", "no_answer", "congestion", "machine", "failed", "dropped", "hungup")
    @classmethod
    def _not_negative(cls, value: Any) -> Any:
        if isinstance(value, float) and value < 0:
            raise ValueError("a duration cannot be negative")
        return value


class AmdConfig(_Strict):
    enabled: bool = False
    on_machine: Literal["hangup", "message"] = "hangup"
    message: Prompt | None = None  # required when on_machine is message

    @model_validator(mode="after")
    def _message(self) -> AmdConfig:
        if self.on_machine == "message" and self.message is None:
            raise ValueError("on_machine: message needs message: PROMPT (what to leave after the beep)")
        return self


class AbandonConfig(_Strict):
    message: Prompt | None = None  # required unless mode is preview
    after: Duration = MAX_ABANDON_AFTER_S
    cap: Annotated[float, BeforeValidator(_parse_cap), AfterValidator(_check_cap)] = MAX_ABANDON_CAP

    @field_validator("after")
    @classmethod
    def _legal_after(cls, value: float) -> float:
        if not 0 < value <= MAX_ABANDON_AFTER_S:
            raise ValueError(
                f"after must be above 0 and at most 2 s: a person who answered must hear an agent "
                f"or the abandon message within 2 s; got {value:g}"
            )
        return value


class DncConfig(_Strict):
    files: list[Annotated[str, Field(min_length=1), AfterValidator(_no_ctl)]] = Field(default_factory=list)


class DispositionConfig(_Strict):
    final: bool = True  # the lead is done
    dnc: bool = False  # the number goes to the internal DNC


class ListColumnsConfig(_Strict):
    phone: ColumnName = "phone"
    name: ColumnName = "name"
    timezone: ColumnName = "timezone"
    postal_code: ColumnName = "postal_code"
    fields: list[ColumnName] = Field(default_factory=list)

    @model_validator(mode="after")
    def _distinct(self) -> ListColumnsConfig:
        seen: set[str] = set()
        for column in (self.phone, self.name, self.timezone, self.postal_code, *self.fields):
            if column in seen:
                raise ValueError(f"column {column!r} is mapped twice")
            seen.add(column)
        return self


class ListConfig(_Strict):
    default_region: str = "US"
    columns: ListColumnsConfig = Field(default_factory=ListColumnsConfig)
    delimiter: Literal[",", ";", "\t", "|"] = ","

    @field_validator("default_region")
    @classmethod
    def _region(cls, value: str) -> str:
        if value not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(
                f"unknown region {value!r}: an ISO 3166 alpha-2 code such as US, GB, FR (upper case)"
            )
        return value


class CampaignFile(_Strict):
    """One ``config/campaigns/NAME.yaml``."""

    name: Name | None = None  # default: the file name without .yaml
    pool: PoolConfig
    mode: Literal["preview", "progressive", "power", "predictive"]
    power_ratio: Annotated[float, Field(gt=1.0, le=10.0)] | None = None  # power only, required there
    caller_id: CallerIdConfig
    dial: DialConfig
    max_lines: Annotated[int, Field(ge=1, le=10_000)] = 10
    priority: int = 100
    windows: WindowsConfig = Field(default_factory=WindowsConfig)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    amd: AmdConfig = Field(default_factory=AmdConfig)
    abandon: AbandonConfig = Field(default_factory=AbandonConfig)
    min_ring: Duration = MIN_RING_S
    ring_timeout: Duration = 25.0
    drop_redial_guard: Duration = MIN_DROP_REDIAL_GUARD_S
    dnc: DncConfig = Field(default_factory=DncConfig)
    dispositions: dict[Name, DispositionConfig] = Field(default_factory=dict)
    list_: ListConfig = Field(default_factory=ListConfig, alias="list")

    @field_validator("min_ring")
    @classmethod
    def _min_ring(cls, value: float) -> float:
        if value < MIN_RING_S:
            raise ValueError(f"min_ring must be at least 15 s (the legal minimum ring time); got {value:g}")
        return value

    @field_validator("drop_redial_guard")
    @classmethod
    def _guard(cls, value: float) -> float:
        if value < MIN_DROP_REDIAL_GUARD_S:
            raise ValueError(
                f"drop_redial_guard must be at least 72h (a dropped number is not redialled within "
                f"72 h unless an agent is reserved); got {value / 3600:g}h"
            )
        return value

    @field_validator("dispositions")
    @classmethod
    def _custom_only(cls, value: dict[str, DispositionConfig]) -> dict[str, DispositionConfig]:
        for name in value:
            if name in BUILTIN_DISPOSITIONS:
                raise ValueError(f"{name!r} is a built-in disposition and cannot be redefined")
        return value


# ----------------------------------------------------------------- result
@dataclass(frozen=True, slots=True)
class ListMapping:
    """How to read a call list (CSV) for this campaign."""

    phone: str = "phone"
    name: str = "name"
    timezone: str = "timezone"
    postal_code: str = "postal_code"
    fields: tuple[str, ...] = ()
    delimiter: str = ","
    default_region: str = "US"
    explicit: frozenset[str] = frozenset()  # optional columns the config names: they must be present


@dataclass(frozen=True, slots=True)
class CampaignConfig:
    """A loaded campaign: the pure spec plus what only the I/O side needs."""

    spec: CampaignSpec
    source_file: Path
    dnc_files: tuple[Path, ...] = ()  # absolute, resolved against the campaign file
    columns: ListMapping = field(default_factory=ListMapping)
    dial_strings: Mapping[str, str] = field(default_factory=dict)  # pbx node -> dial template


# ----------------------------------------------------------------- loading
def campaigns_dir(config_path: str | os.PathLike[str]) -> Path:
    """``campaigns/`` beside the main configuration file."""
    return Path(config_path).parent / CAMPAIGNS_DIR


def load_campaigns(directory: Path, config: Config) -> dict[str, CampaignConfig]:
    """Validate every ``*.yaml`` in ``directory`` against ``config``.

    Returns campaigns by name (a missing directory means no campaigns).
    Raises :class:`ConfigError` with every problem of every file, each as
    ``file:line: key.path: problem``.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return {}
    messages: list[str] = []
    loaded: dict[str, CampaignConfig] = {}
    first_file: dict[str, Path] = {}
    for path in sorted(p for p in directory.glob("*.yaml") if p.is_file()):
        try:
            campaign = load_campaign_file(path, config)
        except ConfigError as exc:
            messages += exc.messages
            continue
        name = campaign.spec.name
        if name in loaded:
            messages.append(f"{path}:1: name: campaign {name!r} is already defined in {first_file[name]}")
            continue
        loaded[name] = campaign
        first_file[name] = path
    if messages:
        raise ConfigError(messages)
    return loaded


def load_campaign_file(path: Path, config: Config) -> CampaignConfig:
    """Validate one campaign file; raise ConfigError listing every problem."""
    path = Path(path)
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError([f"{file}: cannot read: {reason}"]) from None
    try:
        data, origins = load_yaml(text, file)
    except YamlError as exc:
        raise ConfigError([str(exc)]) from None
    if data is None:
        raise ConfigError([f"{file}:1: the campaign file is empty"])
    if not isinstance(data, dict):
        raise ConfigError([f"{file}:1: the top level must be a mapping of campaign keys"])

    located: list[tuple[KeyPath, str]] = []
    try:
        model = CampaignFile.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False, include_input=False, include_context=False):
            msg = error["msg"]
            if error["type"] == "value_error":
                msg = msg.removeprefix("Value error, ")
            located.append((_data_path(data, error["loc"]), msg))
        located += _references(data, config)
        raise ConfigError(_render(located, origins)) from None
    located += _references(data, config)
    located += _semantics(model, path, config)
    if located:
        raise ConfigError(_render(located, origins))
    return _convert(model, path, config)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _references(data: Mapping[str, Any], config: Config) -> list[tuple[KeyPath, str]]:
    """Queue, skills and pbx nodes against the main config, on the raw data
    (so they come out with schema errors of the same file)."""
    problems: list[tuple[KeyPath, str]] = []
    pool = _mapping(data.get("pool"))
    queue = pool.get("queue")
    if isinstance(queue, str) and queue not in config.queues:
        known = ", ".join(sorted(config.queues)) or "none"
        problems.append((("pool", "queue"), f"unknown queue {queue!r} (queues: {known})"))
    known_skills: set[str] = set()
    for agent in config.agents.values():
        known_skills.update(agent.skills)
    for q in config.queues.values():
        known_skills.update(q.skills)
    for skill in _mapping(pool.get("skills")):
        if skill not in known_skills:
            problems.append((("pool", "skills", skill), f"no agent or queue has the skill {skill!r}"))
    dial = _mapping(data.get("dial"))
    nodes = ", ".join(sorted(config.pbx))
    node = dial.get("node")
    if isinstance(node, str) and node not in config.pbx:
        problems.append((("dial", "node"), f"unknown pbx node {node!r} (nodes: {nodes})"))
    for name in _mapping(dial.get("template")):
        if name not in config.pbx:
            problems.append((("dial", "template", name), f"unknown pbx node {name!r} (nodes: {nodes})"))
    return problems


def _semantics(model: CampaignFile, path: Path, config: Config) -> list[tuple[KeyPath, str]]:
    """Checks across keys, once each key is valid on its own."""
    problems: list[tuple[KeyPath, str]] = []
    if model.name is None:
        try:
            _check_name(path.stem)
        except ValueError as exc:
            problems.append(((), f"the file name {path.stem!r} is not a valid campaign name ({exc}); set name:"))
    if model.mode == "power" and model.power_ratio is None:
        problems.append((("power_ratio",), "power mode needs power_ratio (lines per free agent, above 1.0)"))
    if model.mode != "power" and model.power_ratio is not None:
        problems.append((("power_ratio",), f"power_ratio is only used in power mode (mode is {model.mode})"))
    if model.mode != "preview" and model.abandon.message is None:
        problems.append(
            (("abandon", "message"), (f"{model.mode} mode needs abandon.message: the prompt a person hears "
             "when no agent is free within 2 s"))
        )
    if model.ring_timeout < model.min_ring:
        problems.append(
            (("ring_timeout",), (f"ring_timeout ({model.ring_timeout:g} s) must be at least min_ring "
             f"({model.min_ring:g} s)"))
        )
    if not any(model.windows.week()):
        problems.append((("windows",), "the calling windows cover no hour of the week: no call could ever be placed"))
    template = model.dial.template
    if isinstance(template, dict):
        if not template:
            problems.append((("dial", "template"), "the per-node mapping of dial templates is empty"))
        elif model.dial.node is not None and model.dial.node not in template:
            problems.append((("dial", "node"), f"node {model.dial.node!r} has no template in dial.template"))
    elif model.dial.node is None and len(config.pbx) > 1:
        problems.append(
            (("dial",), f"node is required when there are several pbx nodes ({', '.join(sorted(config.pbx))})")
        )
    for index, name in enumerate(model.dnc.files):
        resolved = path.parent / name
        if not resolved.is_file():
            problems.append((("dnc", "files", index), f"DNC file not found: {resolved}"))
    return problems


def _convert(model: CampaignFile, path: Path, config: Config) -> CampaignConfig:
    template = model.dial.template
    if isinstance(template, dict):
        dial_strings = dict(template)
        node = model.dial.node or next(iter(template))
    else:
        node = model.dial.node or next(iter(config.pbx))
        dial_strings = {node: template}

    retry_cfg = model.retry
    retry: dict[AttemptOutcome, RetryRule] = {}
    for outcome in (AttemptOutcome.BUSY, AttemptOutcome.NO_ANSWER, AttemptOutcome.CONGESTION,
                    AttemptOutcome.MACHINE, AttemptOutcome.FAILED, AttemptOutcome.DROPPED,
                    AttemptOutcome.HUNGUP):  # fmt: skip
        value = getattr(retry_cfg, outcome.value.replace("-", "_"))
        retry[outcome] = RetryRule(0.0, retry=False) if value == "never" else RetryRule(float(value))

    dispositions = dict(BUILTIN_DISPOSITIONS)
    for name, custom in model.dispositions.items():
        dispositions[name] = Disposition(name, final=custom.final, dnc=custom.dnc)

    windows = model.windows
    calling = CallingWindows(
        weekdays=windows.week(),
        holiday_country=windows.holidays.country if windows.holidays else "",
        holiday_subdiv=(windows.holidays.subdiv or "") if windows.holidays else "",
        closed_dates=frozenset(windows.closed_dates),
    )
    spec = CampaignSpec(
        name=model.name or path.stem,
        mode=DialMode(model.mode),
        queue=model.pool.queue,
        skills=dict(model.pool.skills),
        node=node,
        caller_id_number=model.caller_id.number,
        caller_id_name=model.caller_id.name,
        dial_string=dial_strings[node],
        max_lines=model.max_lines,
        power_ratio=model.power_ratio if model.power_ratio is not None else 1.0,
        windows=calling,
        retry=retry,
        max_attempts=retry_cfg.max_attempts,
        max_attempts_30d=retry_cfg.max_attempts_30d,
        amd=model.amd.enabled,
        machine_action=MachineAction(model.amd.on_machine),
        machine_message=model.amd.message or "",
        abandon_message=model.abandon.message or "",
        abandon_after=model.abandon.after,
        abandon_cap=model.abandon.cap,
        min_ring=model.min_ring,
        ring_timeout=model.ring_timeout,
        drop_redial_guard=model.drop_redial_guard,
        dispositions=dispositions,
        default_region=model.list_.default_region,
        priority=model.priority,
    )
    cols = model.list_.columns
    columns = ListMapping(
        phone=cols.phone,
        name=cols.name,
        timezone=cols.timezone,
        postal_code=cols.postal_code,
        fields=tuple(cols.fields),
        delimiter=model.list_.delimiter,
        default_region=model.list_.default_region,
        explicit=frozenset(f for f in ("name", "timezone", "postal_code") if f in cols.model_fields_set),
    )
    return CampaignConfig(
        spec=spec,
        source_file=path,
        dnc_files=tuple((path.parent / name).resolve() for name in model.dnc.files),
        columns=columns,
        dial_strings=dial_strings,
    )
