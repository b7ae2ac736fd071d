"""Numbered schema migrations, tracked with ``PRAGMA user_version``.

Migration N turns a version N-1 database into version N. They only ever move forward;
a database whose version is newer than :data:`LATEST` was written by a newer Passerelle
and is refused rather than guessed at.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: subscribers, their network accounts, their contacts
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
    CREATE TABLE subscribers (
        id INTEGER PRIMARY KEY,
        jid TEXT UNIQUE,
        created REAL NOT NULL,
        settings TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE accounts (
        subscriber_id INTEGER NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
        network TEXT NOT NULL,
        legacy_id TEXT NOT NULL,
        secret BLOB,
        created REAL NOT NULL,
        PRIMARY KEY (subscriber_id, network),
        UNIQUE (network, legacy_id)
    );
    CREATE TABLE contacts (
        subscriber_id INTEGER NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
        network TEXT NOT NULL,
        legacy_id TEXT NOT NULL,
        name TEXT NOT NULL DEFAULT '',
        groups TEXT NOT NULL DEFAULT '[]',
        list_bits INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (subscriber_id, network, legacy_id)
    );
    """,
    # 2: the durable outbox (messages accepted, not yet confirmed by their network)
    """
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        network TEXT NOT NULL,
        subscriber_id INTEGER REFERENCES subscribers(id) ON DELETE CASCADE,
        dedup_key TEXT NOT NULL UNIQUE,
        destination TEXT NOT NULL,
        payload TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'sending')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt REAL NOT NULL,
        created REAL NOT NULL,
        expires REAL NOT NULL
    );
    CREATE INDEX outbox_due ON outbox (network, next_attempt);
    CREATE INDEX outbox_order ON outbox (subscriber_id, destination, id);
    """,
    # 3: SMS state — verification codes, sending quotas, MO parts, receipts, seen keys
    """
    CREATE TABLE seen (dedup_key TEXT PRIMARY KEY, at REAL NOT NULL);
    CREATE INDEX seen_at ON seen (at);
    CREATE TABLE sms_codes (
        jid TEXT PRIMARY KEY,
        msisdn TEXT NOT NULL,
        code_hash BLOB NOT NULL,
        salt BLOB NOT NULL,
        expires REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE sms_sent (
        item_key TEXT PRIMARY KEY,
        subscriber_id INTEGER NOT NULL,
        parts INTEGER NOT NULL,
        at REAL NOT NULL
    );
    CREATE INDEX sms_sent_at ON sms_sent (at);
    CREATE TABLE sms_usage (
        bucket TEXT NOT NULL,            -- 'h<epoch hour>' or 'd<epoch day>'
        subscriber_id INTEGER NOT NULL,  -- 0: the whole gateway
        parts INTEGER NOT NULL,
        PRIMARY KEY (bucket, subscriber_id)
    );
    CREATE TABLE sms_mo_parts (
        source TEXT NOT NULL,
        destination TEXT NOT NULL,
        reference INTEGER NOT NULL,
        total INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        data_coding INTEGER NOT NULL,
        payload BLOB NOT NULL,
        received_at REAL NOT NULL,
        PRIMARY KEY (source, destination, reference, total, seq)
    );
    CREATE TABLE sms_parts_sent (
        item_key TEXT NOT NULL,
        seq INTEGER NOT NULL,
        smsc_id TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'sent',
        total INTEGER NOT NULL,
        subscriber_id INTEGER REFERENCES subscribers(id) ON DELETE CASCADE,
        meta TEXT NOT NULL,
        at REAL NOT NULL,
        PRIMARY KEY (item_key, seq)
    );
    CREATE INDEX sms_parts_sent_id ON sms_parts_sent (smsc_id);
    """,
    # 4: convergence — a contact's phone number (linked identities) and SMS reply routing
    """
    ALTER TABLE contacts ADD COLUMN phone TEXT NOT NULL DEFAULT '';
    ALTER TABLE contacts ADD COLUMN phone_manual INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX contacts_phone ON contacts (subscriber_id, phone);
    CREATE TABLE conversations (
        subscriber_id INTEGER PRIMARY KEY REFERENCES subscribers(id) ON DELETE CASCADE,
        last_from TEXT NOT NULL,
        last_at REAL NOT NULL
    );
    """,
    # 5: the keys of messages that left the outbox, so that a client's resend of one (the
    # same id and text, after a lost stream) is not delivered again
    """
    CREATE TABLE delivered (dedup_key TEXT PRIMARY KEY, at REAL NOT NULL);
    CREATE INDEX delivered_at ON delivered (at);
    """,
)

LATEST = len(MIGRATIONS)
