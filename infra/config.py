"""Configuration: config.yaml, overridden key by key from HELPLINE_* env variables.

Defaults live in the Structs below; the shipped config.yaml states the same values
for operators to read. `load()` is the only entry point.
"""
from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
import yaml

from infra import redisurl

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_SECRET = "sample-secret-change-me-0123456789abcdef0123456789abcdef"


class ConfigError(Exception):
    """The configuration cannot be used; the message says which key and why."""


class Server(msgspec.Struct, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = "http://127.0.0.1:8080"
    allowed_origins: str = ""
    production: bool = False
    max_connections_per_node: int = 20000
    ws_max_queue: int = 1000        # frames queued for a client that is not reading before it is dropped
    gc_thresholds: str = "50000,50,100"   # Python's gc.set_threshold for `serve` (see server/gcwatch.py)
    max_commands_in_flight: int = 512    # WebSocket commands a node works on at once; more wait for a slot
    max_commands_waiting: int = 4096     # past this many waiting, a command is answered `unavailable` at once
    # abuse of the transport (docs/security.md "Transport, sessions and staff login")
    keepalive_timeout_s: float = 15      # a connection with no request in progress (headers not complete) closes
    body_timeout_s: float = 10           # a request body must arrive within this
    max_connections_per_address: int = 500   # open TCP connections of one client address (0: no cap)
    connection_cap_exempt: str = "127.0.0.0/8,::1"   # comma-separated networks the cap per address spares
    # comma-separated networks of the reverse proxies in front of the nodes (docs/deployment.md): from a peer
    # in them, the client's address is taken from X-Forwarded-For; from any other peer the header is ignored
    trusted_proxies: str = ""
    # open TCP connections of the node (0: as many as the open-file limit allows); at it, a newcomer
    # evicts an idle connection instead of being refused (handlers/transport.py)
    max_open_connections: int = 0
    session_recheck_s: float = 15        # every node re-reads its sessions' accounts this often


class Database(msgspec.Struct, forbid_unknown_fields=True):
    url: str = ""
    pool_min: int = 2
    pool_max: int = 10


class Redis(msgspec.Struct, forbid_unknown_fields=True):
    url: str = ""
    key_prefix: str = "helpline:"


class Auth(msgspec.Struct, forbid_unknown_fields=True):
    jwt_secret: str = SAMPLE_SECRET
    previous_secrets: str = ""      # comma-separated: tokens signed with these stay valid while rotating
    token_ttl_s: int = 86400
    issuer: str = "helpline"
    audience: str = "helpline"
    reset_code_ttl_s: int = 1800    # a one-time password reset code (issued on /admin) is valid this long


class Category(msgspec.Struct, forbid_unknown_fields=True):
    skill: str
    priority: int = 3


def _default_categories() -> dict[str, Category]:
    return {
        "medical": Category("medical", 1),
        "fire": Category("fire", 1),
        "police": Category("police", 2),
        "dispute": Category("general", 3),
        "other": Category("general", 3),
    }


class Dispatch(msgspec.Struct, forbid_unknown_fields=True):
    offer_timeout_s: float = 20
    max_offers: int = 3
    radius_km: float = 10
    tick_s: float = 0.5
    orphan_after_s: float = 3
    # help floods from unverified residents (docs/security.md): past any of these in its window a report is
    # still committed but held (escalated `flood_hold`, flagged `possible_flood`) for a dispatcher's look
    flood_per_address: int = 3           # per client address, per flood_window_s
    flood_per_prefix: int = 10           # per /24 (IPv4) or /64 (IPv6), per flood_window_s
    flood_window_s: int = 600
    unverified_offers_per_min: int = 20  # automatic dispatches of unverified reports, whole cluster
    live_grace_s: float = 20             # after a rebuild: presence comes back within the presence period (15 s)
    # safety (contract §12): a priority-1 incident no available responder can take may withdraw a pending
    # offer of a lower-priority incident; that incident goes back to matching
    preempt: bool = True
    # the console alarm (issue 12): an escalated incident no dispatcher acknowledged this long is texted to the
    # supervisors (accounts marked --supervisor, with a phone); 0: never
    supervisor_after_s: float = 60
    # reaching responders who are not looking at a page (contract §7, issue 12): offers by SMS to a responder
    # with a phone (`offline`: when no connection of theirs is open; `always`; `never`), and a phone call as
    # well, when off line, for incidents of this priority or more urgent (a smaller number)
    offer_sms: str = "offline"
    voice_priority: int = 1
    categories: dict[str, Category] = msgspec.field(default_factory=_default_categories)


class Sms(msgspec.Struct, forbid_unknown_fields=True):
    provider: str = "console"
    account_sid: str = ""
    auth_token: str = ""
    from_number: str = ""
    api_base: str = "https://api.twilio.com"
    # issue 20: where texts nobody asked for may go, and how many texts an hour the number may send
    allowed_countries: str = "CN"        # comma-separated ISO regions a filer may name a party's phone in
    hourly_budget: int = 2000            # texts per hour, cluster-wide; past it non-critical texts wait


class Web(msgspec.Struct, forbid_unknown_fields=True):
    map_tile_url: str = ""
    emergency_number: str = "110"
    city_center_lat: float = 31.2304
    city_center_lon: float = 121.4737


def token_service(cfg: Config) -> Any:
    """The one TokenService of this configuration (serve and the CLI sign alike)."""
    from infra.auth import TokenService

    prev = tuple(s.strip() for s in cfg.auth.previous_secrets.split(",") if s.strip())
    return TokenService(cfg.auth.jwt_secret, cfg.auth.issuer, cfg.auth.audience, cfg.auth.token_ttl_s, prev)


def sms_countries(cfg: Config) -> frozenset[str]:
    """sms.allowed_countries as a set of upper-case ISO region codes."""
    return frozenset(c.strip().upper() for c in cfg.sms.allowed_countries.split(",") if c.strip())


# the push services of the browsers in use (a subscription's endpoint must be on one of them, or under one)
PUSH_SERVICE_HOSTS = ("fcm.googleapis.com,updates.push.services.mozilla.com,push.services.mozilla.com,"
                      "notify.windows.com,push.apple.com")


class Push(msgspec.Struct, forbid_unknown_fields=True):
    """Web Push (issue 12): offers to responders, escalations and priority-1 incidents to dispatchers."""

    vapid_private_key: str = ""          # PEM or base64url; empty: generated once, kept in PostgreSQL (cluster-wide)
    vapid_subject: str = "mailto:helpline@example.org"   # who the push services may contact (mailto: or https:)
    allow_http_endpoints: bool = False   # tests only: accept http:// endpoints (a local stand-in push service)
    endpoint_hosts: str = PUSH_SERVICE_HOSTS   # comma-separated hosts (and their subdomains); "" allows any
    send_timeout_s: float = 10           # one POST to a push service; a slower one counts as failed
    queue_size: int = 1000               # notices waiting per node; past it a notice is dropped (and counted)
    max_in_flight: int = 64              # POSTs to push services at once per node


class Mediation(msgspec.Struct, forbid_unknown_fields=True):
    """Cases followed up (issue 15, docs/mediation.md "Follow-up")."""

    due_days: float = 30                 # a case is due this long after it is filed (due_at)
    take_within_h: float = 24            # ... and must be taken by a mediator this long after (take_by)
    sweep_s: float = 30                  # how often each node looks for cases that became overdue
    feedback_sms_days: float = 14        # a bare 1-5 from an SMS party's phone answers the question this long
    # issue 14: a new case in an area some mediator belongs to reaches that area's watching mediators this
    # long before the other mediators (mediation/area.py); 0: everyone at once
    area_first_s: float = 60


class Privacy(msgspec.Struct, forbid_unknown_fields=True):
    retention_days: int = 180


class Reports(msgspec.Struct, forbid_unknown_fields=True):
    """Reports and export (issue 16, contract §11)."""

    assign_target_s: float = 60          # the call-processing standard: the share of incidents assigned within it
    time_zone: str = "Asia/Shanghai"     # the city's: report periods are its days, weeks and months


class Log(msgspec.Struct, forbid_unknown_fields=True):
    """The process's log lines (infra/logs.py)."""

    format: str = "text"    # text (a terminal) | json (one object a line, for Loki, Elasticsearch, journald)
    level: str = "INFO"     # DEBUG adds a line per WebSocket command and HTTP request


class Pdf(msgspec.Struct, forbid_unknown_fields=True):
    """The agreement PDF (issue 15, mediation/agreement_pdf.py)."""

    font: str = ""      # a TrueType/OpenType font (or .ttc) with Chinese glyphs; empty: Debian's CJK fonts


class Config(msgspec.Struct, forbid_unknown_fields=True):
    server: Server = msgspec.field(default_factory=Server)
    database: Database = msgspec.field(default_factory=Database)
    redis: Redis = msgspec.field(default_factory=Redis)
    data_dir: str = "./var"
    auth: Auth = msgspec.field(default_factory=Auth)
    dispatch: Dispatch = msgspec.field(default_factory=Dispatch)
    sms: Sms = msgspec.field(default_factory=Sms)
    web: Web = msgspec.field(default_factory=Web)
    privacy: Privacy = msgspec.field(default_factory=Privacy)
    push: Push = msgspec.field(default_factory=Push)
    reports: Reports = msgspec.field(default_factory=Reports)
    mediation: Mediation = msgspec.field(default_factory=Mediation)
    pdf: Pdf = msgspec.field(default_factory=Pdf)
    log: Log = msgspec.field(default_factory=Log)


def config_path(env: dict[str, str]) -> Path | None:
    """HELPLINE_CONFIG, else ./config.yaml, else the repository's config.yaml."""
    if env.get("HELPLINE_CONFIG"):
        return Path(env["HELPLINE_CONFIG"])
    for p in (Path.cwd() / "config.yaml", REPO_ROOT / "config.yaml"):
        if p.is_file():
            return p
    return None


def _env_overrides(raw: dict[str, Any], env: dict[str, str]) -> None:
    """Apply HELPLINE_SECTION_KEY for every scalar key the schema knows."""
    for fname, ftype in _fields(Config):
        sub = _struct_type(ftype)
        if sub is None:
            name = f"HELPLINE_{fname.upper()}"
            if name in env:
                raw[fname] = _coerce(env[name], ftype, name)
            continue
        section = raw.setdefault(fname, {}) or {}
        raw[fname] = section
        for key, ktype in _fields(sub):
            name = f"HELPLINE_{fname.upper()}_{key.upper()}"
            if name in env and ktype in (str, int, float, bool):
                section[key] = _coerce(env[name], ktype, name)


def _fields(struct: type) -> list[tuple[str, Any]]:
    hints = msgspec.structs.fields(struct)
    return [(f.name, f.type) for f in hints]


def _struct_type(t: Any) -> type | None:
    return t if isinstance(t, type) and issubclass(t, msgspec.Struct) else None


def _coerce(value: str, t: Any, name: str) -> Any:
    try:
        if t is bool:
            v = value.strip().lower()
            if v in ("1", "true", "yes", "on"):
                return True
            if v in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(value)
        if t in (int, float):
            return t(value)
        return value
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a valid {t.__name__}") from None


def load(env: dict[str, str] | None = None, path: Path | None = None) -> Config:
    env = dict(os.environ if env is None else env)
    path = path or config_path(env)
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(f"cannot read {path}: {e}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: the top level must be a mapping")
    _env_overrides(raw, env)
    try:
        cfg = msgspec.convert(raw, Config, strict=False)
    except msgspec.ValidationError as e:
        raise ConfigError(f"{path or 'config'}: {e}") from None
    validate(cfg)
    return cfg


def _networks(raw: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(n.strip(), strict=False) for n in raw.split(",") if n.strip()]


def trusted_proxies(cfg: Config) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The networks of the reverse proxies whose X-Forwarded-For is believed."""
    return _networks(cfg.server.trusted_proxies)


def exempt_networks(cfg: Config) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The networks whose clients the cap of connections per address spares: those named, and the trusted
    proxies (each holds the connections of many clients)."""
    return _networks(cfg.server.connection_cap_exempt) + trusted_proxies(cfg)


def validate(cfg: Config) -> None:
    if cfg.database.url:
        from infra import dburl

        try:
            dburl.for_node(cfg.database.url)
        except dburl.DbUrlError as e:
            raise ConfigError(str(e)) from None
    if not cfg.redis.key_prefix:
        raise ConfigError("redis.key_prefix must not be empty")
    if cfg.redis.url:
        try:
            redisurl.parse(cfg.redis.url)
        except redisurl.RedisUrlError as e:
            raise ConfigError(f"redis.url: {e}") from None
    if cfg.dispatch.max_offers < 1:
        raise ConfigError("dispatch.max_offers must be at least 1")
    if cfg.dispatch.offer_timeout_s <= 0:
        raise ConfigError("dispatch.offer_timeout_s must be positive")
    if len(cfg.auth.jwt_secret) < 32:
        raise ConfigError("auth.jwt_secret must be at least 32 characters")
    if any(0 < len(s.strip()) < 32 for s in cfg.auth.previous_secrets.split(",")):
        raise ConfigError("auth.previous_secrets: each secret must be at least 32 characters")
    if cfg.server.production and cfg.auth.jwt_secret == SAMPLE_SECRET:
        raise ConfigError("server.production is on but auth.jwt_secret is the sample secret:"
                          " set HELPLINE_AUTH_JWT_SECRET")
    if cfg.server.ws_max_queue < 10:
        raise ConfigError("server.ws_max_queue must be at least 10")
    try:
        gc_t = [int(x) for x in cfg.server.gc_thresholds.split(",")]
    except ValueError:
        gc_t = []
    if len(gc_t) != 3 or any(t < 1 for t in gc_t):
        raise ConfigError("server.gc_thresholds must be three positive integers, e.g. 50000,50,100")
    try:
        ZoneInfo(cfg.reports.time_zone)
    except (ValueError, ZoneInfoNotFoundError):
        raise ConfigError(f"reports.time_zone: {cfg.reports.time_zone!r} is not a time zone (e.g. Asia/Shanghai)"
                          ) from None
    if cfg.reports.assign_target_s <= 0:
        raise ConfigError("reports.assign_target_s must be positive")
    if cfg.server.max_commands_in_flight < 1 or cfg.server.max_commands_waiting < 0:
        raise ConfigError("server.max_commands_in_flight must be at least 1, max_commands_waiting at least 0")
    if cfg.server.keepalive_timeout_s <= 0 or cfg.server.body_timeout_s <= 0 or cfg.server.session_recheck_s <= 0:
        raise ConfigError("server.keepalive_timeout_s, body_timeout_s and session_recheck_s must be positive")
    try:
        _networks(cfg.server.connection_cap_exempt)
    except ValueError as e:
        raise ConfigError(f"server.connection_cap_exempt: {e}") from None
    try:
        trusted_proxies(cfg)
    except ValueError as e:
        raise ConfigError(f"server.trusted_proxies: {e} (networks, e.g. 10.0.0.0/24,::1)") from None
    if cfg.server.max_connections_per_address < 0:
        raise ConfigError("server.max_connections_per_address must be 0 (no cap) or more")
    if cfg.privacy.retention_days < 1:
        raise ConfigError("privacy.retention_days must be at least 1")
    if not sms_countries(cfg) or cfg.sms.hourly_budget < 1:
        raise ConfigError("sms.allowed_countries must name at least one region (e.g. CN); sms.hourly_budget >= 1")
    if cfg.sms.provider not in ("twilio", "console"):
        raise ConfigError("sms.provider must be 'twilio' or 'console'")
    if not cfg.push.vapid_subject.startswith(("mailto:", "https:")):
        raise ConfigError("push.vapid_subject must be a mailto: or https: URL (the push services' contact)")
    if cfg.push.send_timeout_s <= 0 or cfg.push.queue_size < 1 or cfg.push.max_in_flight < 1:
        raise ConfigError("push.send_timeout_s must be positive, push.queue_size and push.max_in_flight at least 1")
    if cfg.dispatch.offer_sms not in ("offline", "always", "never"):
        raise ConfigError("dispatch.offer_sms must be 'offline', 'always' or 'never'")
    m = cfg.mediation
    if m.due_days <= 0 or m.take_within_h <= 0 or m.sweep_s <= 0 or m.feedback_sms_days <= 0:
        raise ConfigError("mediation.due_days, take_within_h, sweep_s and feedback_sms_days must be positive")
    if cfg.log.format not in ("text", "json"):
        raise ConfigError("log.format must be 'text' or 'json'")
    if cfg.log.level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError("log.level must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
    for name, cat in cfg.dispatch.categories.items():
        if not cat.skill:
            raise ConfigError(f"dispatch.categories.{name}.skill is empty")
