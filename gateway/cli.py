"""The ``passerelle`` command.

Exit status: 0 on success, 1 on an error (one clear line on stderr, never a traceback),
2 on a usage error (click's own). Secrets are never printed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click

from gateway import config as config_mod
from gateway import preflight
from gateway.addressing import E164, AddressError, BareJid, MsnHandle
from gateway.config import Config, ConfigError
from gateway.deploy import (
    EJABBERD_INCLUDE,
    EJABBERD_TESTED,
    PROSODY_GLOBAL_MODULE,
    ComponentSpec,
    ejabberd_snippet,
    prosody_components,
)
from gateway.logs import setup_logging
from gateway.storage import Contact, KeyError_, StorageError, Store, Subscriber, create_key_file
from gateway.storage.migrations import LATEST

P = ParamSpec("P")
R = TypeVar("R")
log = logging.getLogger("passerelle")


class Failure(click.ClickException):
    """An error shown as one line, exit status 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"passerelle: {self.message}", err=True)


def fails_cleanly(func: Callable[P, R]) -> Callable[P, R]:
    """Turn the project's own errors into one line and exit status 1."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except (ConfigError, StorageError, KeyError_, AddressError) as exc:
            raise Failure(str(exc)) from None
        except OSError as exc:
            raise Failure(f"{exc.filename or ''}: {exc.strerror}".lstrip(": ")) from None

    return wrapper


def config_path(ctx: click.Context) -> Path:
    given: str | None = ctx.obj.get("config")
    return Path(given or os.environ.get("PASSERELLE_CONFIG") or config_mod.DEFAULT_PATH)


def load_config(ctx: click.Context) -> Config:
    return config_mod.load(config_path(ctx))


def run_async(coro: Awaitable[R]) -> R:
    return asyncio.run(coro)  # type: ignore[arg-type]


async def open_store(cfg: Config, *, create: bool = False) -> Store:
    """Open the database. Only ``db upgrade`` (and ``run``) may create it: for any other
    command a missing file is a typo in ``storage.path``, not a new empty database."""
    cipher = preflight.key_cipher(cfg)
    if not create and not cfg.storage.path.exists():
        raise Failure(
            f"storage.path: database {cfg.storage.path} does not exist "
            "(create it with 'passerelle db upgrade' or start the gateway)"
        )
    return await Store.open(cfg.storage.path, cipher)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-c",
    "--config",
    "config_file",
    metavar="FILE",
    help="Config file (else $PASSERELLE_CONFIG, else /etc/passerelle/passerelle.toml).",
)
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
@click.option("--log-format", type=click.Choice(["human", "json"]), default=None, help="Log line format.")
@click.pass_context
def main(ctx: click.Context, config_file: str | None, verbose: int, log_format: str | None) -> None:
    """Passerelle: an XMPP gateway to SMS (SMPP) and MSN (MSNP), with one buddy list."""
    ctx.ensure_object(dict)
    ctx.obj.update(config=config_file, verbose=verbose, log_format=log_format)
    setup_logging("debug" if verbose > 1 else "info" if verbose else "warning", log_format or "human")


SAMPLE = """\
# Passerelle configuration. Every key is described in README.md ("Configuration").

[xmpp]
host = "127.0.0.1"                 # the XMPP server's component listener
port = 5347                        # its component port (Prosody: component_ports)
user_domains = ["{domain}"]        # only users of these domains may use the gateway
admins = ["admin@{domain}"]        # may use admin commands
registration = "open"              # "open", or "closed": only users added with the CLI

[storage]
path = "{db}"                      # SQLite database (WAL); created by init, db upgrade or run
key_file = "{key}"                 # encrypts legacy passwords at rest; back it up with the database

[logging]
level = "info"                     # debug, info, warning, error
format = "human"                   # human, or json (one JSON object per line)

[sms]                              # operator mobile network (SMS over SMPP 3.4)
jid = "sms.{domain}"               # the component's JID
secret = "{sms_secret}"            # component secret (or secret_file = "...", or env PASSERELLE_SMS_SECRET)
default_region = "FR"              # for numbers written without +country
service_number = "2020"            # short code / number the SMSC routes to the gateway
max_parts = 6                      # longest SMS accepted, in parts
validity_s = 86400                 # an SMS not sent within this many seconds expires
transliterate = true               # typographic quotes, dashes… to GSM-7 look-alikes (cheaper)

[sms.smsc]
host = "127.0.0.1"
port = 2775
system_id = "passerelle"
password = "{smsc_password}"       # or password_file = "...", or env PASSERELLE_SMS_SMSC_PASSWORD
system_type = ""
window = 10                        # PDUs in flight
max_rate = 100                     # submit_sm per second (the carrier's limit)
enquire_link_s = 30                # keep-alive interval

[sms.limits]
per_user_per_hour = 60
per_user_per_day = 300
global_per_day = 100000            # protects the operator's bill

[convergence]                      # one buddy list; reachable by SMS when no XMPP client is online
always_connected = true            # keep MSN logged in for subscribers with a number while they are away
prefer = "msn"                     # linked buddies: "msn" while online there, else SMS; "sms": always SMS
reply_window_s = 86400             # a plain SMS reply goes to whoever wrote last within this window
mobile_status_text = "On mobile"   # MSN personal message while the subscriber is on their phone only
max_forwards_per_minute = 10       # per buddy: more looks like an auto-responder loop and is held back

[msn]                              # PC messenger network (MSNP12)
jid = "msn.{domain}"
secret = "{msn_secret}"            # or secret_file = "...", or env PASSERELLE_MSN_SECRET

[msn.server]
host = "127.0.0.1"                 # notification server
port = 1863
nexus_url = "http://127.0.0.1:8081/nexus-mock"   # Passport 1.4 nexus (TWN login)
login_url = ""                     # optional: overrides the DALogin URL the nexus advertises
"""


@main.command()
@click.option("--domain", default="example.org", show_default=True, help="Your XMPP domain.")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where the database and key go (default: beside the config).",
)
@click.pass_context
@fails_cleanly
def init(ctx: click.Context, domain: str, data_dir: Path | None) -> None:
    """Create what is missing: a config with fresh random secrets, the key file, the database.

    An existing config (e.g. a copy of config/passerelle.example.toml) is kept as it is, and
    the key file and database it names are created if missing; nothing is ever overwritten.
    Then print the Prosody and ejabberd snippets for the components."""
    path = config_path(ctx)
    if path.exists():
        click.echo(f"kept {path} (it exists)")
    else:
        _write_starter_config(path, domain, (data_dir or path.parent).resolve())
        click.echo(f"wrote {path} (mode 0600)")
    layout = config_mod.read_layout(path)
    key, database = layout.key_file, layout.database
    if key.exists():
        click.echo(f"kept {key} (it exists)")
    elif database.exists():
        raise Failure(
            f"storage.key_file: {key} is missing but the database {database} exists: restore the key "
            "file from your backup (a new key cannot read the passwords stored in it)"
        )
    else:
        key.parent.mkdir(parents=True, exist_ok=True)
        create_key_file(key)
        click.echo(f"wrote {key} (mode 0600): back it up with the database")
    if database.exists():
        click.echo(f"kept {database} (it exists)")
    else:
        run_async(_create_database(database, key))
        click.echo(f"created {database} (mode 0600) at schema version {LATEST}")
    click.echo("Set [sms.smsc] password to the one your SMSC gave you, and the MSN server addresses;")
    click.echo(f"then `passerelle -c {path} check-config`.")
    _print_server_snippets(layout.domain or domain, layout.components)


async def _create_database(database: Path, key: Path) -> None:
    store = await Store.open(database, preflight.key_cipher_at(key))
    await store.close()


def _write_starter_config(path: Path, domain: str, base: Path) -> None:
    """Write the sample with fresh secrets (mode 0600, never over a file)."""
    db, key = base / "passerelle.db", base / "secret.key"
    values = {
        "sms_secret": secrets.token_urlsafe(24),
        "msn_secret": secrets.token_urlsafe(24),
        "smsc_password": secrets.token_urlsafe(6)[:8],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(SAMPLE.format(domain=domain, db=db, key=key, **values))


def _print_server_snippets(domain: str, jids: dict[str, str]) -> None:
    """The XMPP server's side, from gateway.deploy (the Prosody part is what the tests run)."""
    components = [ComponentSpec(jid, f"<[{net}] secret>") for net, jid in jids.items()]
    click.echo(
        f'\nProsody: in prosody.cfg.lua, add "{PROSODY_GLOBAL_MODULE}" (mod_privilege, from the '
        "prosody-modules package) to the global modules_enabled, and (the secrets are in the config):\n"
    )
    click.echo(prosody_components(domain, components))
    click.echo(
        f"ejabberd (the tests run {EJABBERD_TESTED}): save this as {EJABBERD_INCLUDE} and add "
        f"`include_config_file: {EJABBERD_INCLUDE}` to ejabberd.yml:\n"
    )
    click.echo(ejabberd_snippet(components))


@main.command("check-config")
@click.pass_context
@fails_cleanly
def check_config(ctx: click.Context) -> None:
    """Validate the config file as `run` would, up to opening sockets; print a summary."""
    cfg = load_config(ctx)
    preflight.check(cfg)
    click.echo(cfg.summary())


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@click.pass_context
@fails_cleanly
def db_upgrade(ctx: click.Context) -> None:
    """Apply pending schema migrations."""
    cfg = load_config(ctx)

    async def go() -> int:
        store = await open_store(cfg, create=True)
        await store.close()
        return store.schema_before

    before = run_async(go())
    if before == 0:
        click.echo(f"created database {cfg.storage.path} at schema version {LATEST}")
    elif before < LATEST:
        click.echo(f"upgraded database {cfg.storage.path} from schema version {before} to {LATEST}")
    else:
        click.echo(f"database {cfg.storage.path} is at schema version {LATEST}, nothing to do")


@main.group()
def user() -> None:
    """Manage subscribers."""


def _parse_subscriber_ref(ref: str) -> tuple[str, str]:
    if ref.startswith("+"):
        return "sms", str(E164.parse(ref))
    return "jid", str(BareJid.parse(ref))


async def _find(store: Store, ref: str) -> Subscriber:
    kind, value = _parse_subscriber_ref(ref)
    found = (
        await store.subscriber_by_account("sms", value)
        if kind == "sms"
        else await store.subscriber_by_jid(BareJid.parse(value))
    )
    if found is None:
        raise Failure(f"no subscriber {value}")
    return found


@user.command("add")
@click.argument("jid", required=False)
@click.option("--msisdn", metavar="+E164", help="The subscriber's own phone number.")
@click.option("--msn", "msn_handle", metavar="HANDLE", help="The subscriber's MSN account.")
@click.option(
    "--msn-password-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="File holding the MSN password (else it is asked for, hidden).",
)
@click.pass_context
@fails_cleanly
def user_add(
    ctx: click.Context,
    jid: str | None,
    msisdn: str | None,
    msn_handle: str | None,
    msn_password_file: Path | None,
) -> None:
    """Add a subscriber (JID may be left out for an SMS-only subscriber with --msisdn)."""
    if jid is None and msisdn is None:
        raise click.UsageError("give a JID, or --msisdn for an SMS-only subscriber")
    if msn_password_file and not msn_handle:
        raise click.UsageError("--msn-password-file goes with --msn")
    cfg = load_config(ctx)
    bare = BareJid.parse(jid) if jid else None
    if bare is not None and bare.domain not in cfg.xmpp.user_domains:
        raise Failure(f"{bare}: not in xmpp.user_domains ({', '.join(cfg.xmpp.user_domains)})")
    region = cfg.sms.default_region if cfg.sms else None
    number = E164.parse(msisdn, region) if msisdn else None
    handle = MsnHandle.parse(msn_handle) if msn_handle else None
    password = _msn_password(msn_password_file, str(handle)) if handle else None

    async def go() -> None:
        store = await open_store(cfg)
        try:
            now = time.time()
            if bare and await store.subscriber_by_jid(bare):
                raise Failure(
                    f"{bare} is already a subscriber; change them with passerelle user set {bare} "
                    "(--msisdn, --msn, …)"
                )
            for net, legacy in (("sms", number), ("msn", handle)):
                if legacy is not None and await store.subscriber_by_account(net, str(legacy)):
                    raise Failure(f"{legacy} is already linked to another subscriber")
            sub = await store.add_subscriber(bare, now)
            if number is not None:
                await store.set_account(sub.id, "sms", str(number), None, now)
            if handle is not None:
                await store.set_account(sub.id, "msn", str(handle), password, now)
        finally:
            await store.close()

    run_async(go())
    click.echo(f"added {bare or number}")


async def _describe(store: Store, sub: Subscriber) -> dict[str, Any]:
    accounts = {a.network: a.legacy_id for a in await store.accounts() if a.subscriber_id == sub.id}
    return {
        "jid": str(sub.jid) if sub.jid else None,
        "msisdn": accounts.get("sms"),
        "msn": accounts.get("msn"),
        "created": datetime.fromtimestamp(sub.created, UTC).isoformat(timespec="seconds"),
    }


@user.command("list")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of {jid, msisdn, msn, created}.")
@click.pass_context
@fails_cleanly
def user_list(ctx: click.Context, as_json: bool) -> None:
    """List subscribers."""
    cfg = load_config(ctx)

    async def go() -> list[dict[str, Any]]:
        store = await open_store(cfg)
        try:
            return [await _describe(store, s) for s in await store.subscribers()]
        finally:
            await store.close()

    rows = run_async(go())
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no subscribers")
    for row in rows:
        click.echo(
            f"{row['jid'] or '-':30} {row['msisdn'] or '-':16} {row['msn'] or '-':30} {row['created']}"
        )


SETTINGS = ("prefer", "always_connected", "mobile_status_text", "forwarding")
"""What ``user set`` changes besides the accounts; the default is ``[convergence]``'s."""


def _settings(cfg: Config, sub: Subscriber) -> dict[str, Any]:
    defaults = {
        "prefer": cfg.convergence.prefer,
        "always_connected": cfg.convergence.always_connected,
        "mobile_status_text": cfg.convergence.mobile_status_text,
        "forwarding": True,
    }
    return {key: sub.settings.get(key, defaults[key]) for key in SETTINGS}


@user.command("show")
@click.argument("ref", metavar="JID|+E164")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="A JSON object: jid, msisdn, msn, created, and settings with the ones set for them.",
)
@click.pass_context
@fails_cleanly
def user_show(ctx: click.Context, ref: str, as_json: bool) -> None:
    """Show one subscriber: each linked identity and every setting ``user set`` changes."""
    cfg = load_config(ctx)

    async def go() -> dict[str, Any]:
        store = await open_store(cfg)
        try:
            sub = await _find(store, ref)
            row = await _describe(store, sub)
            return {
                **row,
                "settings": _settings(cfg, sub),
                "set": sorted(k for k in SETTINGS if k in sub.settings),
            }
        finally:
            await store.close()

    row = run_async(go())
    if as_json:
        click.echo(json.dumps(row, indent=2))
        return
    for key in ("jid", "msisdn", "msn", "created"):
        click.echo(f"{key + ':':20}{row[key] or '-'}")
    for key, value in row["settings"].items():
        shown = str(value).lower() if isinstance(value, bool) else str(value)
        click.echo(f"{key + ':':20}{shown}{'' if key in row['set'] else '  (default)'}")


@user.command("remove")
@click.argument("ref", metavar="JID|+E164")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
@fails_cleanly
def user_remove(ctx: click.Context, ref: str, yes: bool) -> None:
    """Remove a subscriber and everything stored about them."""
    cfg = load_config(ctx)
    if not yes:
        if not sys.stdin.isatty():
            raise Failure("refusing to remove without --yes when there is no terminal to confirm on")
        click.confirm(f"Remove {ref} and everything stored about them?", abort=True)

    async def go() -> int:
        store = await open_store(cfg)
        try:
            sub = await _find(store, ref)
            await store.remove_subscriber(sub.id)
            return sub.id
        finally:
            await store.close()

    sub_id = run_async(go())
    click.echo(f"removed {ref}")
    _tell_gateway(cfg, {"subscriber": sub_id})


@main.group()
def contact() -> None:
    """Manage subscribers' contacts."""


@contact.command("add")
@click.argument("jid")
@click.argument("number", metavar="+E164")
@click.option("--name", default="", help="The name shown in the roster.")
@click.pass_context
@fails_cleanly
def contact_add(ctx: click.Context, jid: str, number: str, name: str) -> None:
    """Add a phone contact to a subscriber's roster (pushed at once while they are online)."""
    cfg = load_config(ctx)
    if cfg.sms is None:
        raise Failure("sms: the SMS network is not configured")
    phone = str(E164.parse(number, cfg.sms.default_region))

    async def go() -> int:
        store = await open_store(cfg)
        try:
            sub = await _find(store, jid)
            # list_bits 0: not yet in the roster; a listing by the running gateway or the
            # next login pushes it (and sets 1)
            await store.upsert_contacts([Contact(sub.id, "sms", phone, name or phone, (), 0)])
            return sub.id
        finally:
            await store.close()

    sub_id = run_async(go())
    click.echo(f"added {phone} to {jid}")
    _tell_gateway(cfg, {"subscriber": sub_id, "listed": ["sms"]})


@contact.command("link")
@click.argument("ref", metavar="JID|+E164")
@click.argument("handle")
@click.argument("number", metavar="+E164")
@click.pass_context
@fails_cleanly
def contact_link(ctx: click.Context, ref: str, handle: str, number: str) -> None:
    """Link an MSN buddy to their phone number: one buddy, reachable both ways.

    A manual link wins over the number the buddy publishes on MSN (PHM).
    """
    cfg = load_config(ctx)
    region = cfg.sms.default_region if cfg.sms else None
    phone = str(E164.parse(number, region))
    buddy = str(MsnHandle.parse(handle))

    async def go() -> int:
        store = await open_store(cfg)
        try:
            sub = await _find(store, ref)
            if await store.account(sub.id, "msn") is None:
                raise Failure(
                    f"{ref} has no MSN account, so has no MSN buddies to link; give them one first "
                    f"(passerelle user set {ref} --msn HANDLE)"
                )
            await store.link_phone(sub.id, "msn", buddy, phone)
            return sub.id
        finally:
            await store.close()

    sub_id = run_async(go())
    click.echo(f"linked {buddy} to {phone} for {ref}")
    _tell_gateway(cfg, {"subscriber": sub_id})


def _contact_ref(cfg: Config, text: str) -> tuple[str, str]:
    """A contact as typed: a phone number (the SMS network) or an MSN handle."""
    if text.startswith("+") or text[:1].isdigit():
        return "sms", str(E164.parse(text, cfg.sms.default_region if cfg.sms else None))
    return "msn", str(MsnHandle.parse(text))


@contact.command("list")
@click.argument("ref", metavar="JID|+E164")
@click.option(
    "--json", "as_json", is_flag=True, help="A JSON list of {network, contact, name, phone, phone_source}."
)
@click.pass_context
@fails_cleanly
def contact_list(ctx: click.Context, ref: str, as_json: bool) -> None:
    """List a subscriber's contacts, with the number each MSN buddy is linked to."""
    cfg = load_config(ctx)

    async def go() -> list[dict[str, Any]]:
        store = await open_store(cfg)
        try:
            sub = await _find(store, ref)
            return [
                {
                    "network": c.network,
                    "contact": c.legacy_id,
                    "name": c.name,
                    "phone": c.phone or None,
                    "phone_source": ("operator" if c.phone else "unlinked")
                    if c.phone_manual
                    else ("network" if c.phone else None),
                }
                for network in ("sms", "msn")
                for c in await store.contacts(sub.id, network)
            ]
        finally:
            await store.close()

    rows = run_async(go())
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo(f"{ref} has no contacts")
    for row in rows:
        link = f"{row['phone'] or '-'} ({row['phone_source']})" if row["phone_source"] else "-"
        click.echo(f"{row['network']:4} {row['contact']:32} {row['name'][:24]:24} {link}")


@contact.command("remove")
@click.argument("ref", metavar="JID|+E164")
@click.argument("handle", metavar="HANDLE|+E164")
@click.pass_context
@fails_cleanly
def contact_remove(ctx: click.Context, ref: str, handle: str) -> None:
    """Remove a contact (an MSN buddy or a phone contact) from a subscriber's list and roster."""
    cfg = load_config(ctx)
    network, legacy_id = _contact_ref(cfg, handle)

    async def go() -> int:
        store = await open_store(cfg)
        try:
            sub = await _find(store, ref)
            if await store.contact(sub.id, network, legacy_id) is None:
                raise Failure(f"{ref} has no contact {legacy_id} (see passerelle contact list {ref})")
            await store.remove_contacts(sub.id, network, [legacy_id])
            return sub.id
        finally:
            await store.close()

    sub_id = run_async(go())
    click.echo(f"removed {legacy_id} from {ref}")
    _tell_gateway(cfg, {"subscriber": sub_id, "removed": [[network, legacy_id]]})


@contact.command("unlink")
@click.argument("ref", metavar="JID|+E164")
@click.argument("handle")
@click.pass_context
@fails_cleanly
def contact_unlink(ctx: click.Context, ref: str, handle: str) -> None:
    """Undo a buddy's link to a phone number (also one the buddy publishes on MSN, which
    is then ignored until ``contact link`` sets one again)."""
    cfg = load_config(ctx)
    buddy = str(MsnHandle.parse(handle))

    async def go() -> int:
        store = await open_store(cfg)
        try:
            sub = await _find(store, ref)
            if not await store.unlink_phone(sub.id, "msn", buddy):
                raise Failure(f"{ref} has no MSN buddy {buddy} (see passerelle contact list {ref})")
            return sub.id
        finally:
            await store.close()

    sub_id = run_async(go())
    click.echo(f"unlinked {buddy} from its phone number for {ref}")
    _tell_gateway(cfg, {"subscriber": sub_id})


@user.command("set")
@click.argument("ref", metavar="JID|+E164")
@click.option("--prefer", type=click.Choice(["msn", "sms"]), help="Route to linked buddies.")
@click.option(
    "--always-connected/--not-always-connected", default=None, help="Keep MSN logged in while away."
)
@click.option("--mobile-status", metavar="TEXT", help="MSN personal message while on the phone only.")
@click.option("--forwarding/--no-forwarding", default=None, help="Forward MSN messages by SMS (STOP/START).")
@click.option("--msisdn", metavar="+E164", help="Give (or change) the subscriber's own phone number.")
@click.option("--no-msisdn", is_flag=True, help="Take the subscriber's phone number away.")
@click.option("--msn", "msn_handle", metavar="HANDLE", help="Give (or change) the subscriber's MSN account.")
@click.option(
    "--msn-password-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="File holding the MSN password (else it is asked for, hidden).",
)
@click.option("--no-msn", is_flag=True, help="Take the subscriber's MSN account away.")
@click.pass_context
@fails_cleanly
def user_set(
    ctx: click.Context,
    ref: str,
    prefer: str | None,
    always_connected: bool | None,
    mobile_status: str | None,
    forwarding: bool | None,
    msisdn: str | None,
    no_msisdn: bool,
    msn_handle: str | None,
    msn_password_file: Path | None,
    no_msn: bool,
) -> None:
    """Change a subscriber: their number, their MSN account, and the convergence settings
    (which override [convergence]). A running gateway applies the change at once."""
    cfg = load_config(ctx)
    changes: dict[str, Any] = {
        k: v
        for k, v in (
            ("prefer", prefer),
            ("always_connected", always_connected),
            ("mobile_status_text", mobile_status),
            ("forwarding", forwarding),
        )
        if v is not None
    }
    if msisdn and no_msisdn:
        raise click.UsageError("--msisdn and --no-msisdn contradict each other")
    if (msn_handle or msn_password_file) and no_msn:
        raise click.UsageError("--msn/--msn-password-file and --no-msn contradict each other")
    if not changes and not (msisdn or no_msisdn or msn_handle or msn_password_file or no_msn):
        raise click.UsageError("give at least one setting to change")
    region = cfg.sms.default_region if cfg.sms else None
    number = str(E164.parse(msisdn, region)) if msisdn else None
    handle = str(MsnHandle.parse(msn_handle)) if msn_handle else None
    password = _msn_password(msn_password_file, handle) if handle or msn_password_file else None

    async def go() -> tuple[int, dict[str, Any], list[str]]:
        store = await open_store(cfg)
        try:
            sub = await _find(store, ref)
            relogin: list[str] = []
            if number is not None or no_msisdn:
                relogin += await _set_account(store, sub, "sms", number, None)
            if no_msn:
                relogin += await _set_account(store, sub, "msn", None, None)
            elif password is not None:
                new_handle = handle or await _current_handle(store, sub)
                relogin += await _set_account(store, sub, "msn", new_handle, password)
            settings = {**sub.settings, **changes}
            if changes:
                await store.update_settings(sub.id, settings)
            return sub.id, settings, relogin
        finally:
            await store.close()

    sub_id, settings, relogin = run_async(go())
    shown = [f"{k}={v}" for k, v in sorted(settings.items())]
    shown += [f"msisdn={number or '-'}"] if number or no_msisdn else []
    shown += [f"msn={handle or '(password changed)'}"] if password else ["msn=-"] if no_msn else []
    click.echo(f"{ref}: " + ", ".join(shown))
    _tell_gateway(cfg, {"subscriber": sub_id, "relogin": relogin})


def _has_terminal() -> bool:
    return sys.stdin.isatty()


def _msn_password(file: Path | None, handle: str | None) -> str:
    """From the file, else asked for with hidden input: never from the command line."""
    if file is not None:
        password = file.read_text(encoding="utf-8").strip()
        if not password:
            raise Failure(f"{file}: the file is empty; put the MSN password in it")
        return password
    if not _has_terminal():
        raise Failure("give the MSN password with --msn-password-file FILE (there is no terminal to ask on)")
    return str(click.prompt(f"MSN password for {handle}", hide_input=True))


async def _current_handle(store: Store, sub: Subscriber) -> str:
    account = await store.account(sub.id, "msn")
    if account is None:
        raise Failure(f"{sub.jid or sub.id} has no MSN account; give one with --msn HANDLE")
    return account.legacy_id


async def _set_account(
    store: Store, sub: Subscriber, network: str, legacy_id: str | None, secret: str | None
) -> list[str]:
    """Give, change or (``legacy_id`` None) take away one account; the networks whose
    session must start again."""
    if legacy_id is None:
        current = await store.account(sub.id, network)
        if current is None:
            return []
        others = [a for a in await store.accounts() if a.subscriber_id == sub.id and a.network != network]
        if sub.jid is None and not others:
            raise Failure(
                f"{current.legacy_id} is all this subscriber has (no JID); remove the subscriber "
                "instead (passerelle user remove)"
            )
        await store.remove_account(sub.id, network)
        return [network]
    owner = await store.subscriber_by_account(network, legacy_id)
    if owner is not None and owner.id != sub.id:
        name = await _name(store, owner)
        raise Failure(
            f"{legacy_id} already belongs to subscriber {name}; take it from them first "
            f"(passerelle user set {name} --no-{'msisdn' if network == 'sms' else 'msn'})"
        )
    await store.set_account(sub.id, network, legacy_id, secret, time.time())
    return [network]


async def _name(store: Store, sub: Subscriber) -> str:
    """How the commands name a subscriber: their JID, else their number."""
    if sub.jid is not None:
        return str(sub.jid)
    account = await store.account(sub.id, "sms")
    return account.legacy_id if account else f"#{sub.id}"


def _tell_gateway(cfg: Config, change: dict[str, Any]) -> None:
    """Have a running gateway apply what was just written to the database."""
    from gateway.ops.admin_socket import AdminSocketError, NotRunning, request

    try:
        answer = request(cfg.admin.socket, "subscriber-changed", args=change)
    except NotRunning:
        click.echo("no gateway is running; it applies the change when it starts")
        return
    except AdminSocketError as exc:
        click.echo(
            f"passerelle: the running gateway could not be told ({exc}); restart it "
            "(systemctl restart passerelle) for the change to apply now",
            err=True,
        )
        return
    click.echo(f"the running gateway applied it: {answer.get('applied', 'done')}")


@main.command()
@click.pass_context
@fails_cleanly
def run(ctx: click.Context) -> None:
    """Run the gateway until SIGINT or SIGTERM."""
    from gateway.app import Gateway

    cfg = load_config(ctx)
    setup_logging(
        "debug" if ctx.obj["verbose"] > 1 else "info" if ctx.obj["verbose"] else cfg.logging.level,
        ctx.obj["log_format"] or cfg.logging.format,
        secrets=_secret_values(cfg),
    )
    preflight.check(cfg)  # the same one-line errors as check-config, before any socket
    gateway = Gateway(cfg, log_level_fixed=ctx.obj["verbose"] > 0)
    run_async(gateway.run_until_signal())


def _secret_values(cfg: Config) -> list[str]:
    """What the log must never show (masked if some library logs it anyway)."""
    found = [cfg.sms.secret.value, cfg.sms.smsc.password.value] if cfg.sms else []
    return found + ([cfg.msn.secret.value] if cfg.msn else [])


# -- operations: status, backups (gateway.ops) ---------------------------------------------


@main.command()
@click.option("--json", "as_json", is_flag=True, help="The whole state as JSON, for scripts.")
@click.option(
    "--socket",
    "socket_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The admin socket to ask (default: admin.socket of the config file).",
)
@click.pass_context
@fails_cleanly
def status(ctx: click.Context, as_json: bool, socket_path: Path | None) -> None:
    """Live state of the running gateway, read over its admin socket.

    Only the socket's path is read from the config file, so a file with an error elsewhere
    does not stop it."""
    from gateway.ops.admin_socket import AdminSocketError, NotRunning, request
    from gateway.ops.status import render

    socket_path = socket_path or config_mod.admin_socket_of(config_path(ctx))
    try:
        snap = request(socket_path, "status")["status"]
    except (NotRunning, AdminSocketError) as exc:
        raise Failure(str(exc)) from None
    click.echo(json.dumps(snap, indent=2) if as_json else render(snap))


@db.command("backup")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
@click.pass_context
@fails_cleanly
def db_backup(ctx: click.Context, file: Path, force: bool) -> None:
    """Copy the database to FILE: consistent, and safe while the gateway runs."""
    from gateway.ops.backup import BackupError, backup

    cfg = config_mod.load_without_secrets(config_path(ctx))
    try:
        info = backup(cfg.storage.path, file, overwrite=force)
    except BackupError as exc:
        raise Failure(str(exc)) from None
    click.echo(
        f"backed up {cfg.storage.path} to {file} (mode 0600; schema version {info.schema}, "
        f"{info.subscribers} subscribers)"
    )
    click.echo(f"Keep the key file {cfg.storage.key_file} with it: without it, stored passwords are lost.")


@db.command("restore")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
@fails_cleanly
def db_restore(ctx: click.Context, file: Path, yes: bool) -> None:
    """Replace the database with the backup FILE; the gateway must be stopped.

    The current database is kept beside it as <database>.bak (or .bak.1, …)."""
    from gateway.ops.admin_socket import AdminSocketError, running_pid
    from gateway.ops.backup import BackupError, restore

    cfg = config_mod.load_without_secrets(config_path(ctx))
    try:
        pid = running_pid(cfg.admin.socket)
    except AdminSocketError as exc:
        raise Failure(f"cannot tell whether a gateway is running, so not restoring: {exc}") from None
    if pid is not None:
        raise Failure(
            f"a gateway is running (pid {pid}) on this database; stop it first (systemctl stop passerelle)"
        )
    if not yes:
        if not sys.stdin.isatty():
            raise Failure("refusing to restore without --yes when there is no terminal to confirm on")
        click.confirm(f"Replace {cfg.storage.path} with {file}?", abort=True)
    try:
        done = run_async(restore(cfg.storage.path, file, cfg.storage.key_file))
    except BackupError as exc:
        raise Failure(str(exc)) from None
    click.echo(
        f"restored {file} to {cfg.storage.path} (schema version {done.info.schema}, "
        f"{done.info.subscribers} subscribers)"
    )
    if done.migrated_to > done.info.schema:
        click.echo(f"migrated forward to schema version {done.migrated_to}")
    if done.kept is not None:
        click.echo(f"the previous database is kept as {done.kept}")
