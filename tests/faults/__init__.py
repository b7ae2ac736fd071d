"""Fault-injection suite: end to end, real Prosody, the gateway as its own process
(``passerelle -c CFG run``, so ``kill -9`` is real), the fake SMSC and fake MSN server,
loopback only, each case bounded in time.

Size. The issue asks for at least 1,000 messages per direction per case: that is the
default, streamed at 50 per second per direction (six directions, 300 messages a second),
so a case takes about 30 seconds. The suite is part of ``make test`` (``pytest -q``
collects it); ``make faults`` runs it alone. ``PASSERELLE_FAULT_MESSAGES`` overrides the
size (``PASSERELLE_FAULT_MESSAGES=200`` for a quick run: the rate then drops so that the
stream still lasts 10 s) and ``PASSERELLE_FAULT_RATE`` the rate; ``PASSERELLE_FAULTS=0``
leaves the suite out of a run. Direct use: ``.venv/bin/pytest -q -s tests/faults``. The
disk-full case mounts a tmpfs, so it needs root (it is skipped otherwise).

Run with ``-s`` to see each case's table: per direction sent, received, errors told, lost,
lies, duplicates (split into those a sender's own resend explains and the gateway's own),
resends, messages rerouted by convergence, recovery time (fault end → first delivery in
that direction) and catch-up time (fault end → last delivery). See
:mod:`tests.faults.harness` for the world and the accounting.
"""
