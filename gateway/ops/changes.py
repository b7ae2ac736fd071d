"""What the management commands (``passerelle user set``, ``contact …``) changed in the
database, applied by the running gateway when the command tells it over the admin socket.

The command line is another process: it writes the database, then sends
``subscriber-changed`` with what it changed. Without that, the running gateway would see
the new rows only when its cached look-ups expire, and would never log a new MSN account
in (or an old one out) before the subscriber's next presence change.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from gateway.bridge import Bridge
from gateway.core import xep0100
from gateway.core.actions import RemoveRoster, SendXmppPresence
from gateway.storage import Subscriber

log = logging.getLogger(__name__)
SESSIONLESS = frozenset({"sms"})  # networks without per-user logins


def _args(args: Mapping[str, Any]) -> tuple[int, set[str], list[tuple[str, str]], set[str]]:
    """``{"subscriber": id, "relogin": [network…], "removed": [[network, legacy_id]…],
    "listed": [network…]}`` (``listed``: contacts were added on these networks)."""
    sub_id = args.get("subscriber")
    relogin = args.get("relogin", [])
    removed = args.get("removed", [])
    listed = args.get("listed", [])
    if (
        not isinstance(sub_id, int)
        or not isinstance(relogin, list)
        or not all(isinstance(n, str) for n in relogin)
        or not isinstance(listed, list)
        or not all(isinstance(n, str) for n in listed)
        or not isinstance(removed, list)
        or not all(
            isinstance(r, list) and len(r) == 2 and all(isinstance(x, str) for x in r) for r in removed
        )
    ):
        raise LookupError(
            'expected args {"subscriber": id, "relogin": [...], "removed": [[network, id]...], '
            '"listed": [...]}'
        )
    return sub_id, set(relogin), [(r[0], r[1]) for r in removed], set(listed)


async def subscriber_changed(bridge: Bridge, args: Mapping[str, Any]) -> str:
    """Apply a change made in the database by another process; returns one line saying
    what the running gateway did. ``LookupError`` (answered as an error) for bad args."""
    sub_id, relogin, removed, listed = _args(args)
    bridge.store.forget_cached()  # every look-up from now on reads the new rows
    bridge.store.sms.forget_cached()
    sub = await bridge.store.subscriber(sub_id)
    if sub is None:  # removed: their sessions go too
        for network, transport in bridge.transports.items():
            if network not in SESSIONLESS:
                await transport.stop_session(sub_id)
        return "the subscriber's sessions are closed"
    done = [await _remove_contact(bridge, sub, network, legacy_id) for network, legacy_id in removed]
    done += [await _list_contacts(bridge, sub, network) for network in sorted(listed & SESSIONLESS)]
    for network in bridge.transports:
        if network in relogin:
            await _announce(bridge, sub, network)
        if network not in SESSIONLESS:
            done.append(await _session(bridge, sub, network, network in relogin))
    return "; ".join(d for d in done if d) or "applied"


async def _announce(bridge: Bridge, sub: Subscriber, network: str) -> None:
    """An account given or taken by the operator: the component subscribes to the user's
    presence (or unsubscribes), as after a registration from their client (XEP-0100)."""
    component = bridge.components.get(network)
    if component is None or sub.jid is None:
        return
    registered = await bridge.store.account(sub.id, network) is not None
    actions = xep0100.after_registration if registered else xep0100.after_unregistration
    for action in actions(sub.jid):
        component.send_xmpp_presence(action)


async def _session(bridge: Bridge, sub: Subscriber, network: str, relogin: bool) -> str:
    """Log the subscriber in or out of ``network`` as their accounts and settings say now."""
    transport = bridge.transports[network]
    account = await bridge.store.account(sub.id, network)
    online = sub.jid is not None and bridge.resources[network].is_online(sub.jid)
    wanted = account is not None and (
        online or (network == "msn" and await bridge.convergence.keeps_connected(sub))
    )
    if relogin or not wanted:
        await transport.stop_session(sub.id)
    if account is None:
        return f"{network}: logged out" if relogin else ""
    if not wanted:
        return f"{network}: logs in at the subscriber's next XMPP login" if relogin else ""
    await transport.start_session(sub, account, await bridge.store.account_secret(sub.id, network))
    if online and sub.jid is not None:
        presence = bridge.resources[network].aggregate(sub.jid)
    else:
        presence = bridge.convergence.mobile_presence(sub)
    await transport.set_presence(sub.id, presence)
    log.info("%s: session of subscriber %s updated by the operator", network, sub.jid or sub.id)
    return f"{network}: logging in as {account.legacy_id}"


async def _remove_contact(bridge: Bridge, sub: Subscriber, network: str, legacy_id: str) -> str:
    """Take a removed contact out of the subscriber's XMPP roster and, where the network
    keeps lists (MSN) and their session is up, off their list there."""
    transport = bridge.transports.get(network)
    component = bridge.components.get(network)
    if transport is None or component is None or sub.jid is None:
        return ""
    answers: list[SendXmppPresence] = []
    if network not in SESSIONLESS:
        answers = await transport.contact_subscription(sub, legacy_id, "unsubscribe")
    local = transport.contact_localpart(legacy_id)
    if not await component.push_roster(RemoveRoster(sub.jid, (local,))):
        component.send_xmpp_presence(SendXmppPresence(sub.jid, local, "unsubscribed"))
    if network in SESSIONLESS:
        return f"{legacy_id} removed from the roster"
    if not answers:
        return (
            f"{legacy_id} removed from the roster; not logged in to {network}, so it stays on the "
            f"{network} list and comes back at the next login"
        )
    return f"{legacy_id} removed from the roster and the {network} list"


async def _list_contacts(bridge: Bridge, sub: Subscriber, network: str) -> str:
    """Contacts added by the operator on a network without logins (SMS): while the
    subscriber is online on its component, list them again now, which pushes the new ones
    into their roster as at a login; otherwise their next login does."""
    transport = bridge.transports.get(network)
    account = await bridge.store.account(sub.id, network)
    if transport is None or sub.jid is None or account is None:
        return ""
    if not bridge.resources[network].is_online(sub.jid):
        return "the contact reaches the roster at the subscriber's next login"
    await transport.start_session(sub, account, None)
    return "the contact was pushed to the subscriber's roster"
