"""The component link's rules: one log line per change of state, capped exponential pauses
with jitter, and a refused secret said once with what to check."""

from __future__ import annotations

from gateway.core.link import CAP_S, FIRST_S, LOST_S, QUICK_TRIES, Link


def link() -> Link:
    return Link("sms.example.org", "127.0.0.1:5347")


def test_a_server_that_stays_down_is_said_once_with_the_next_retry() -> None:
    lk = link()
    delay, note = lk.unreachable("Connection refused", 0.0)
    assert note is not None and note.level == "warning"
    assert note.text == (
        f"component sms.example.org cannot reach the XMPP server at 127.0.0.1:5347: Connection refused; "
        f"retrying in {delay:.1f} s (then less often, up to every {CAP_S:.0f} s)"
    )
    notes = [lk.unreachable("Connection refused", 0.5)[1] for _ in range(20)]
    assert notes == [None] * 20
    _, other = lk.unreachable("Connection timed out", 0.5)
    assert other is not None and "Connection timed out" in other.text  # another reason: said


def test_pauses_grow_to_the_cap_with_half_of_each_random() -> None:
    lk = link()
    lows = [lk.unreachable("Connection refused", 0.0)[0] for _ in range(12)]
    assert lows[:4] == [FIRST_S / 2, FIRST_S, FIRST_S * 2, FIRST_S * 4]
    assert lows[-1] == CAP_S / 2
    lk = link()
    highs = [lk.unreachable("Connection refused", 0.999999)[0] for _ in range(12)]
    assert all(low < high <= 2 * low for low, high in zip(lows, highs, strict=True))
    assert max(highs) <= CAP_S


def test_connected_lost_and_back_are_each_said_once() -> None:
    lk = link()
    for _ in range(3):
        lk.unreachable("Connection refused", 0.0)
    note = lk.connected()
    assert note is not None and note.level == "info"
    assert "sms.example.org connected to the XMPP server at 127.0.0.1:5347" in note.text
    assert lk.connected() is None
    delay, lost = lk.lost("stream error system-shutdown", 0.0)
    assert lost is not None and lost.level == "warning" and "reconnecting in" in lost.text
    assert delay == LOST_S  # a restarting server is back soon: no backoff carried over
    quick = [lk.unreachable("Connection refused", 0.0) for _ in range(QUICK_TRIES + 2)]
    assert quick[0][1] is not None  # down now: said once
    assert [d for d, _ in quick] == [LOST_S] * QUICK_TRIES + [FIRST_S / 2, FIRST_S]  # then backing off


def test_a_refused_secret_is_said_once_with_what_to_check() -> None:
    lk = link()
    delay, note = lk.refused("not-authorized", 0.0)
    assert note is not None and note.level == "error"
    assert "refused the secret of component sms.example.org" in note.text
    assert "component_secret" in note.text and "[sms] or [msn]" in note.text
    assert f"retrying in {delay:.1f} s" in note.text
    later = [lk.refused("not-authorized", 0.0) for _ in range(6)]
    assert [n for _, n in later] == [None] * 6
    assert [d for d, _ in later] == sorted(d for d, _ in later) and later[-1][0] > delay
