"""The configuration: one TOML file parsed once into frozen dataclasses.

Every error names the dotted key and what was expected, e.g.
``sms.smsc.port: expected an integer 1-65535, got "abc"``. Unknown keys are errors.
Secrets come from the file, from ``<key>_file`` naming a file, or from an environment
variable ``PASSERELLE_<SECTION>_<KEY>``; they are held in :class:`Secret` so that they
never print.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from gateway.addressing import AddressError, BareJid

DEFAULT_PATH = Path("/etc/passerelle/passerelle.toml")
PLACEHOLDER = "change-me"  # the sample file's value; refused as a secret

T = TypeVar("T")


class ConfigError(Exception):
    """A configuration problem; ``str()`` is one line naming the key."""


@dataclass(frozen=True, slots=True)
class Secret:
    """A secret value that never shows up in a repr, a log line or a traceback."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret(***)"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class XmppConfig:
    host: str
    port: int
    user_domains: tuple[str, ...]
    admins: tuple[BareJid, ...]
    registration: Literal["open", "closed"]


@dataclass(frozen=True, slots=True)
class StorageConfig:
    path: Path
    key_file: Path


@dataclass(frozen=True, slots=True)
class SmscConfig:
    host: str
    port: int
    system_id: str
    password: Secret
    system_type: str
    window: int
    max_rate: float
    enquire_link_s: float


@dataclass(frozen=True, slots=True)
class SmsLimits:
    per_user_per_hour: int
    per_user_per_day: int
    global_per_day: int


@dataclass(frozen=True, slots=True)
class SmsConfig:
    jid: str
    secret: Secret
    default_region: str
    service_number: str
    max_parts: int
    validity_s: int
    transliterate: bool
    smsc: SmscConfig
    limits: SmsLimits


@dataclass(frozen=True, slots=True)
class MsnServerConfig:
    host: str
    port: int
    nexus_url: str
    login_url: str


@dataclass(frozen=True, slots=True)
class MsnConfig:
    jid: str
    secret: Secret
    server: MsnServerConfig


@dataclass(frozen=True, slots=True)
class ConvergenceConfig:
    """One buddy list across networks, and the subscriber reachable by SMS."""

    always_connected: bool = True
    prefer: Literal["msn", "sms"] = "msn"
    reply_window_s: int = 86400
    mobile_status_text: str = "On mobile"
    max_forwards_per_minute: int = 10


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: str
    format: Literal["human", "json"]


@dataclass(frozen=True, slots=True)
class AdminConfig:
    socket: Path


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """The optional Prometheus endpoint: ``listen`` is (host, port), or None when off."""

    listen: tuple[str, int] | None = None


@dataclass(frozen=True, slots=True)
class Config:
    xmpp: XmppConfig
    storage: StorageConfig
    sms: SmsConfig | None
    msn: MsnConfig | None
    logging: LoggingConfig
    admin: AdminConfig
    source: Path | None = None
    convergence: ConvergenceConfig = ConvergenceConfig()
    metrics: MetricsConfig = MetricsConfig()

    def summary(self) -> str:
        """One line for ``check-config`` (no secrets)."""
        nets = [f"sms={self.sms.jid}" if self.sms else "", f"msn={self.msn.jid}" if self.msn else ""]
        shown = " ".join(n for n in nets if n) or "no network"
        return (
            f"OK: {shown}; server {self.xmpp.host}:{self.xmpp.port}; "
            f"domains {', '.join(self.xmpp.user_domains)}; registration {self.xmpp.registration}; "
            f"database {self.storage.path}"
        )


class _Section:
    """Reads one table, tracking which keys were used so leftovers are reported."""

    def __init__(self, data: Mapping[str, Any], path: str) -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{path}: expected a table, got {_show(data)}")
        self.data = data
        self.path = path
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def _get(self, name: str, default: Any, required: bool) -> Any:
        self.used.add(name)
        if name in self.data:
            return self.data[name]
        if required:
            raise ConfigError(f"{self.key(name)}: required key is missing")
        return default

    def string(self, name: str, default: str | None = None, *, non_empty: bool = False) -> str:
        value = self._get(name, default, default is None)
        if not isinstance(value, str):
            raise ConfigError(f"{self.key(name)}: expected a string, got {_show(value)}")
        if non_empty and not value.strip():
            raise ConfigError(f"{self.key(name)}: expected a non-empty string")
        return value

    def integer(self, name: str, default: int | None, lo: int, hi: int) -> int:
        value = self._get(name, default, default is None)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ConfigError(f"{self.key(name)}: expected an integer {lo}-{hi}, got {_show(value)}")
        return value

    def number(self, name: str, default: float, lo: float, hi: float) -> float:
        value = self._get(name, default, False)
        if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
            raise ConfigError(f"{self.key(name)}: expected a number {lo:g}-{hi:g}, got {_show(value)}")
        return float(value)

    def boolean(self, name: str, default: bool) -> bool:
        value = self._get(name, default, False)
        if not isinstance(value, bool):
            raise ConfigError(f"{self.key(name)}: expected true or false, got {_show(value)}")
        return value

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self._get(name, default, False)
        if value not in choices:
            wanted = " or ".join(f'"{c}"' for c in choices)
            raise ConfigError(f"{self.key(name)}: expected {wanted}, got {_show(value)}")
        return str(value)

    def strings(self, name: str, default: list[str] | None = None) -> tuple[str, ...]:
        value = self._get(name, default, default is None)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{self.key(name)}: expected a list of strings, got {_show(value)}")
        return tuple(value)

    def table(self, name: str, *, required: bool = False) -> _Section | None:
        value = self._get(name, None, required)
        return None if value is None else _Section(value, self.key(name))

    def secret(self, name: str, env: Mapping[str, str]) -> Secret:
        """A secret from ``name``, ``name_file`` or ``PASSERELLE_<PATH>_<NAME>``."""
        self.used.update({name, f"{name}_file"})
        env_name = "PASSERELLE_" + self.key(name).replace(".", "_").upper()
        sources = [s for s in (name, f"{name}_file") if s in self.data]
        if len(sources) > 1:
            raise ConfigError(f"{self.key(name)}: give either {name} or {name}_file, not both")
        if f"{name}_file" in self.data:
            file_key = self.key(f"{name}_file")
            raw = self.data[f"{name}_file"]
            if not isinstance(raw, str):
                raise ConfigError(f"{file_key}: expected a file path, got {_show(raw)}")
            try:
                value = Path(raw).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"{file_key}: cannot read {raw}: {exc.strerror}") from None
        elif name in self.data:
            value = self.data[name]
            if not isinstance(value, str):
                raise ConfigError(f"{self.key(name)}: expected a string")
        elif env_name in env:
            value = env[env_name]
        else:
            raise ConfigError(f"{self.key(name)}: required secret is missing (or set {env_name})")
        if not value or value.strip() == PLACEHOLDER:
            hint = (
                "the one the SMSC operator gave you"
                if name == "password"
                else "any long random string, e.g. from `openssl rand -hex 24`, also set in your XMPP server"
            )
            raise ConfigError(f"{self.key(name)}: still the sample placeholder; set a real secret ({hint})")
        return Secret(value)

    def done(self) -> None:
        extra = sorted(set(self.data) - self.used)
        if extra:
            raise ConfigError(f"{self.key(extra[0])}: unknown key")


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"' if len(value) <= 40 else f'"{value[:37]}..."'
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _domain(text: str, key: str) -> str:
    try:
        jid = BareJid.parse(text)
    except AddressError as exc:
        raise ConfigError(f"{key}: {exc}") from None
    if jid.local:
        raise ConfigError(f'{key}: expected a domain, got "{text}"')
    return jid.domain


def _xmpp(s: _Section) -> XmppConfig:
    domains = tuple(_domain(d, s.key("user_domains")) for d in s.strings("user_domains"))
    if not domains:
        raise ConfigError(f"{s.key('user_domains')}: expected at least one domain")
    admins: list[BareJid] = []
    for raw in s.strings("admins", []):
        try:
            admins.append(BareJid.parse(raw))
        except AddressError as exc:
            raise ConfigError(f"{s.key('admins')}: {exc}") from None
    mode = s.choice("registration", "open", ("open", "closed"))
    return XmppConfig(
        host=s.string("host", "127.0.0.1", non_empty=True),
        port=s.integer("port", 5347, 1, 65535),
        user_domains=domains,
        admins=tuple(admins),
        registration="open" if mode == "open" else "closed",
    )


def _sms(s: _Section, env: Mapping[str, str]) -> SmsConfig:
    smsc = _required(s.table("smsc", required=True))
    limits = s.table("limits") or _Section({}, s.key("limits"))
    region = s.string("default_region", "FR").upper()
    import phonenumbers

    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigError(f'{s.key("default_region")}: expected a region code like "FR", got "{region}"')
    config = SmsConfig(
        jid=_domain(s.string("jid"), s.key("jid")),
        secret=s.secret("secret", env),
        default_region=region,
        service_number=_service_number(s),
        max_parts=s.integer("max_parts", 6, 1, 255),
        validity_s=s.integer("validity_s", 86400, 60, 7 * 86400),
        transliterate=s.boolean("transliterate", True),
        smsc=SmscConfig(
            host=smsc.string("host", "127.0.0.1", non_empty=True),
            port=smsc.integer("port", 2775, 1, 65535),
            system_id=_smpp_text(smsc, "system_id", smsc.string("system_id", non_empty=True)),
            password=_smpp_secret(smsc, "password", smsc.secret("password", env)),
            system_type=_smpp_text(smsc, "system_type", smsc.string("system_type", "")),
            window=smsc.integer("window", 10, 1, 1000),
            max_rate=smsc.number("max_rate", 100.0, 0.1, 100000.0),
            enquire_link_s=smsc.number("enquire_link_s", 30.0, 1.0, 3600.0),
        ),
        limits=SmsLimits(
            per_user_per_hour=limits.integer("per_user_per_hour", 60, 0, 10**7),
            per_user_per_day=limits.integer("per_user_per_day", 300, 0, 10**8),
            global_per_day=limits.integer("global_per_day", 100000, 0, 10**9),
        ),
    )
    smsc.done()
    limits.done()
    return config


SMPP_TEXT_MAX = {"system_id": 15, "password": 8, "system_type": 12}
"""SMPP 3.4 section 4.1 (bind): C-Octet Strings of 16, 9 and 13 octets, the NUL included."""
SMPP_ADDR_MAX = 20  # source_addr: a C-Octet String of 21 octets (SMPP 3.4 section 4.4.1)
ALPHANUMERIC_SENDER_MAX = 11  # an alphanumeric originator (GSM 03.40 TP-OA: 11 characters)


def _smpp_problem(text: str, limit: int) -> str | None:
    """What is wrong with ``text`` as an SMPP C-Octet String of at most ``limit`` octets."""
    try:
        size = len(text.encode("latin-1"))
    except UnicodeEncodeError:
        return "expected Latin-1 text (SMPP carries these fields as single octets)"
    if "\x00" in text:
        return "expected text without NUL characters"
    if size > limit:
        return f"expected at most {limit} characters (the SMPP 3.4 limit), got {size}"
    return None


def _smpp_text(s: _Section, name: str, value: str) -> str:
    problem = _smpp_problem(value, SMPP_TEXT_MAX[name])
    if problem:
        raise ConfigError(f"{s.key(name)}: {problem}: {_show(value)}")
    return value


def _smpp_secret(s: _Section, name: str, secret: Secret) -> Secret:
    """Like :func:`_smpp_text`, without ever showing the value."""
    problem = _smpp_problem(secret.value, SMPP_TEXT_MAX[name])
    if problem:
        raise ConfigError(f"{s.key(name)}: {problem} (ask the SMSC operator for the right one)")
    return secret


def _service_number(s: _Section) -> str:
    """The gateway's own address: digits (a short code or a number, sent as such), or an
    alphanumeric sender name; the SMSC would refuse anything longer at every send."""
    value = s.string("service_number", non_empty=True)
    key = s.key("service_number")
    if value.isdigit():
        if len(value) > SMPP_ADDR_MAX:
            raise ConfigError(f"{key}: expected at most {SMPP_ADDR_MAX} digits, got {len(value)}")
        return value
    if not value.isascii() or not value.replace(" ", "").isalnum() or len(value) > ALPHANUMERIC_SENDER_MAX:
        raise ConfigError(
            f"{key}: expected digits (a short code, or a number without +) or a sender name of at most "
            f"{ALPHANUMERIC_SENDER_MAX} letters and digits, got {_show(value)}"
        )
    return value


def _msn(s: _Section, env: Mapping[str, str]) -> MsnConfig:
    server = _required(s.table("server", required=True))
    config = MsnConfig(
        jid=_domain(s.string("jid"), s.key("jid")),
        secret=s.secret("secret", env),
        server=MsnServerConfig(
            host=server.string("host", "127.0.0.1", non_empty=True),
            port=server.integer("port", 1863, 1, 65535),
            nexus_url=_url(server, "nexus_url", required=True),
            login_url=_url(server, "login_url", required=False),
        ),
    )
    server.done()
    return config


def _url(s: _Section, name: str, *, required: bool) -> str:
    value = s.string(name, None if required else "")
    if not value:
        return value
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number 0-65535
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or " " in value:
        raise ConfigError(
            f"{s.key(name)}: expected an http:// or https:// URL with a host, got {_show(value)}"
        )
    return value


def _required(section: _Section | None) -> _Section:
    assert section is not None  # table(required=True) raised otherwise
    return section


def _section(root: _Section, name: str, build: Callable[[_Section], T]) -> T | None:
    table = root.table(name)
    if table is None:
        return None
    value = build(table)
    table.done()
    return value


def parse(
    data: Mapping[str, Any], env: Mapping[str, str] | None = None, source: Path | None = None
) -> Config:
    """Build a :class:`Config` from parsed TOML; raises :class:`ConfigError`."""
    env = os.environ if env is None else env
    root = _Section(data, "")
    xmpp = _section(root, "xmpp", _xmpp)
    if xmpp is None:
        raise ConfigError("xmpp: required section is missing")
    storage_s = _required(root.table("storage", required=True))
    base = source.parent if source else Path.cwd()
    storage = StorageConfig(
        path=base / storage_s.string("path", non_empty=True),
        key_file=base / storage_s.string("key_file", non_empty=True),
    )
    storage_s.done()
    sms = _section(root, "sms", lambda s: _sms(s, env))
    msn = _section(root, "msn", lambda s: _msn(s, env))
    if sms is None and msn is None:
        raise ConfigError("sms, msn: configure at least one network section")
    if sms and msn and sms.jid == msn.jid:
        raise ConfigError("msn.jid: must differ from sms.jid")
    log_s = root.table("logging") or _Section({}, "logging")
    logging = LoggingConfig(
        level=log_s.choice("level", "info", ("debug", "info", "warning", "error")),
        format="json" if log_s.choice("format", "human", ("human", "json")) == "json" else "human",
    )
    log_s.done()
    conv_s = root.table("convergence") or _Section({}, "convergence")
    convergence = ConvergenceConfig(
        always_connected=conv_s.boolean("always_connected", True),
        prefer="sms" if conv_s.choice("prefer", "msn", ("msn", "sms")) == "sms" else "msn",
        reply_window_s=conv_s.integer("reply_window_s", 86400, 60, 30 * 86400),
        mobile_status_text=conv_s.string("mobile_status_text", "On mobile"),
        max_forwards_per_minute=conv_s.integer("max_forwards_per_minute", 10, 1, 1000),
    )
    conv_s.done()
    admin_s = root.table("admin") or _Section({}, "admin")
    admin = AdminConfig(socket=base / admin_s.string("socket", str(storage.path) + ".sock"))
    admin_s.done()
    metrics_s = root.table("metrics") or _Section({}, "metrics")
    metrics = MetricsConfig(_listen(metrics_s, "listen"))
    metrics_s.done()
    root.done()
    return Config(xmpp, storage, sms, msn, logging, admin, source, convergence, metrics)


def _listen(s: _Section, name: str) -> tuple[str, int] | None:
    """``"127.0.0.1:9464"``, ``"[::1]:9464"`` or ``""`` (off) to (host, port) or None."""
    raw = s.string(name, "").strip()
    if not raw:
        return None
    host, sep, port = raw.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535 or " " in host:
        raise ConfigError(
            f'{s.key(name)}: expected "host:port" such as "127.0.0.1:9464" or "[::1]:9464", got {_show(raw)}'
        )
    return host, int(port)


class _AnySecret(Mapping[str, str]):
    """An environment in which every secret is set: for commands that never use one."""

    def __getitem__(self, key: str) -> str:
        return os.environ.get(key) or "unused"

    def __contains__(self, key: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(os.environ)

    def __len__(self) -> int:
        return len(os.environ)


def load_without_secrets(path: Path) -> Config:
    """Read the file for operations that use only paths (``status``, backups): a secret
    kept in the service's environment need not be set in the operator's shell."""
    return load(path, _AnySecret())


@dataclass(frozen=True, slots=True)
class Layout:
    """What ``passerelle init`` needs from a config that may still be being filled in."""

    database: Path
    key_file: Path
    domain: str | None  # the first of xmpp.user_domains, when readable
    components: dict[str, str]  # network -> component JID, for the sections present


def read_layout(path: Path) -> Layout:
    """The ``storage`` paths (resolved as :func:`load` does) and the component JIDs, without
    requiring anything else to be valid yet (placeholders, missing secrets)."""
    data = _read_toml(path)
    storage = _required(_Section(data, "").table("storage", required=True))
    base = path.resolve().parent
    database = base / storage.string("path", non_empty=True)
    key_file = base / storage.string("key_file", non_empty=True)
    xmpp = data.get("xmpp")
    domains = xmpp.get("user_domains") if isinstance(xmpp, Mapping) else None
    domain = domains[0] if isinstance(domains, list) and domains and isinstance(domains[0], str) else None
    components: dict[str, str] = {}
    for network in ("sms", "msn"):
        section = data.get(network)
        if isinstance(section, Mapping) and isinstance(section.get("jid"), str):
            components[network] = section["jid"]
    return Layout(database, key_file, domain, components)


def load(path: Path, env: Mapping[str, str] | None = None) -> Config:
    """Read and parse the file at ``path``."""
    return parse(_read_toml(path), env, source=path.resolve())


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file (create one with `passerelle init`)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    return data


def admin_socket_of(path: Path) -> Path:
    """The admin socket a config file names, read leniently: ``status`` needs nothing else,
    so a file with an error elsewhere (edited after the gateway started) still leads to the
    running gateway. Raises :class:`ConfigError` only when the path cannot be made out."""
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file; give the socket with --socket PATH") from None
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot read ({exc.strerror}); give the socket with --socket PATH"
        ) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); give the socket with --socket PATH") from None
    base = path.resolve().parent
    admin, storage = data.get("admin"), data.get("storage")
    socket = admin.get("socket") if isinstance(admin, Mapping) else None
    if isinstance(socket, str) and socket.strip():
        return base / socket
    db = storage.get("path") if isinstance(storage, Mapping) else None
    if isinstance(db, str) and db.strip():
        return base / (str(base / db) + ".sock")
    raise ConfigError(
        f"{path}: neither admin.socket nor storage.path is set; give the socket with --socket PATH"
    )
