"""Notification-server state machine against scripted server lines (transcripts of msnp.md)."""

from __future__ import annotations

import pytest

from transports.msn.errors import LoginFailure
from transports.msn.ns import NotificationConnection, NsState
from transports.msn.ns_events import (
    CommandAccepted,
    CommandFailed,
    ConnectionLost,
    ContactPropertyChanged,
    Invited,
    ListChanged,
    ListSynced,
    LoggedIn,
    LoginFailed,
    NeedTicket,
    OwnFriendlyNameChanged,
    OwnStatusConfirmed,
    PersonalMessageChanged,
    PresenceChanged,
    Redirected,
    SignedOutElsewhere,
    SwitchboardGranted,
)
from transports.msn.status import ListBit, Status


def wire(*lines: str) -> bytes:
    return "".join(line + "\r\n" for line in lines).encode()


def sent(ns: NotificationConnection) -> list[str]:
    return ns.data_to_send().decode().splitlines()


def login(ns: NotificationConnection) -> None:
    """Walk the msnp.md login transcript up to USR OK."""
    ns.start()
    assert sent(ns) == ["VER 1 MSNP12 CVR0"]
    assert ns.receive_data(wire("VER 1 MSNP12"), 0) == []
    assert sent(ns) == ["CVR 2 0x0409 winnt 5.1 i386 MSNMSGR 7.0.0816 MSMSGS alice@example.com"]
    ns.receive_data(wire("CVR 2 7.0.0816 7.0.0816 7.0.0816 https://x https://x"), 0)
    assert sent(ns) == ["USR 3 TWN I alice@example.com"]
    events = ns.receive_data(wire("USR 3 TWN S ct=1,rver=1,wp=FS_40SEC_0_COMPACT,lc=1,id=1"), 0)
    assert events == [NeedTicket("ct=1,rver=1,wp=FS_40SEC_0_COMPACT,lc=1,id=1")]
    ns.supply_ticket("t=abc&p=def")
    assert sent(ns) == ["USR 4 TWN S t=abc&p=def"]
    events = ns.receive_data(wire("USR 4 OK alice@example.com 1 0"), 0)
    assert events == [LoggedIn("alice@example.com", True)]
    assert sent(ns) == ["SYN 5 0 0"]


SYN_OUTPUT = (
    "SBS 0 null",
    "SYN 5 2000-01-01T00:00:00.0-00:00 2000-01-01T00:00:00.0-00:00 3 1",
    "GTC A",
    "BLP AL",
    "PRP MFN Alice%20%C3%A0%20la%20plage",
    "LSG Friends 11111111-0000-0000-0000-000000000001",
    "LST N=bob@example.com F=Bob C=22222222-0000-0000-0000-000000000002 11 1 "
    "11111111-0000-0000-0000-000000000001",
    "BPR PHM +33%20612345678",
    "BPR MOB Y",
    "LST N=carol@example.com F=Carol C=33333333-0000-0000-0000-000000000003 19",
    "LST N=dave@example.com F=Dave 8",
)


def logged_in_and_synced() -> tuple[NotificationConnection, ListSynced]:
    ns = NotificationConnection("alice@example.com")
    login(ns)
    events = ns.receive_data(wire(*SYN_OUTPUT), 0)
    assert events == []  # nothing final until the list is known complete
    assert sent(ns) == ["CHG 6 NLN 0"]  # first CHG, always with capabilities
    events = ns.receive_data(wire("CHG 6 NLN 0"), 1.0)
    assert isinstance(events[0], ListSynced)
    assert events[1] == OwnStatusConfirmed(6, Status.NLN)
    assert ns.state is NsState.LIVE
    return ns, events[0]


def test_sync_lists_masks_groups_and_phones() -> None:
    _, synced = logged_in_and_synced()
    assert synced.friendly_name == "Alice à la plage"
    assert (synced.gtc, synced.blp) == ("A", "AL")
    assert [(g.guid, g.name) for g in synced.groups] == [("11111111-0000-0000-0000-000000000001", "Friends")]
    bob, carol, dave = synced.contacts
    assert bob.lists == ListBit.FL | ListBit.AL | ListBit.RL
    assert bob.groups == ("11111111-0000-0000-0000-000000000001",)
    assert bob.mobile_phone == "+33 612345678"
    assert carol.lists == ListBit.FL | ListBit.AL | ListBit.PL and carol.pending
    assert carol.mobile_phone is None
    assert dave.lists == ListBit.RL and dave.guid is None


def test_empty_list_still_sends_first_chg() -> None:
    ns = NotificationConnection("alice@example.com", status=Status.AWY, caps=0x40000000)
    login(ns)
    ns.receive_data(wire("SYN 5 d1 d2 0 0", "GTC A", "BLP BL", "PRP MFN Alice"), 0)
    assert sent(ns) == ["CHG 6 AWY 1073741824"]
    events = ns.receive_data(wire("CHG 6 AWY 1073741824"), 0)
    assert isinstance(events[0], ListSynced) and events[0].blp == "BL"


def test_presence_psm_and_invitation() -> None:
    ns, _ = logged_in_and_synced()
    events = ns.receive_data(
        wire(
            "ILN 6 NLN bob@example.com Bob 1342177280 %3Cmsnobj%2F%3E",
            "NLN AWY bob@example.com Bob%20B 0",
            "FLN bob@example.com",
            "RNG 11752013 127.0.0.1:1864 CKI 849102291.520491 bob@example.com Bob%20B",
        ),
        2,
    )
    assert events == [
        PresenceChanged("bob@example.com", Status.NLN, "Bob", 1342177280, initial=True),
        PresenceChanged("bob@example.com", Status.AWY, "Bob B", 0),
        PresenceChanged("bob@example.com", Status.FLN),
        Invited("11752013", "127.0.0.1", 1864, "849102291.520491", "bob@example.com", "Bob B"),
    ]
    psm = b"<Data><PSM>Fish &amp; chips</PSM><CurrentMedia></CurrentMedia></Data>"
    events = ns.receive_data(f"UBX bob@example.com {len(psm)}\r\n".encode() + psm, 3)
    assert events == [PersonalMessageChanged("bob@example.com", "Fish & chips")]


def test_own_commands_and_their_echoes() -> None:
    ns, _ = logged_in_and_synced()
    assert ns.set_personal_message("On mobile") == 7
    payload = b"<Data><PSM>On mobile</PSM><CurrentMedia></CurrentMedia></Data>"
    assert ns.data_to_send() == f"UUX 7 {len(payload)}\r\n".encode() + payload
    assert ns.receive_data(wire("UUX 7 0"), 0) == [CommandAccepted(7, "UUX")]
    assert ns.set_friendly_name("Alice B") == 8
    assert sent(ns) == ["PRP 8 MFN Alice%20B"]
    assert ns.receive_data(wire("PRP 8 MFN Alice%20B"), 0) == [OwnFriendlyNameChanged("Alice B", 8)]
    assert ns.set_status(Status.BSY) == 9
    assert sent(ns) == ["CHG 9 BSY 0"]


def test_list_changes_rem_fl_uses_guid() -> None:
    ns, _ = logged_in_and_synced()
    t = ns.add_to_list(ListBit.FL, "erin@example.com", "Erin E")
    assert sent(ns) == [f"ADC {t} FL N=erin@example.com F=Erin%20E"]
    events = ns.receive_data(wire(f"ADC {t} FL N=erin@example.com C=guid-erin"), 0)
    assert events == [ListChanged(ListBit.FL, "erin@example.com", True, ListBit.FL, None, "guid-erin", t)]
    t2 = ns.remove_from_list(ListBit.FL, "erin@example.com")
    assert sent(ns) == [f"REM {t2} FL guid-erin"]
    events = ns.receive_data(wire(f"REM {t2} FL guid-erin"), 0)
    assert events == [ListChanged(ListBit.FL, "erin@example.com", False, ListBit(0), None, "guid-erin", t2)]
    t3 = ns.remove_from_list(ListBit.PL, "carol@example.com")
    assert sent(ns) == [f"REM {t3} PL carol@example.com"]
    t4 = ns.add_to_list(ListBit.AL, "carol@example.com")
    assert sent(ns) == [f"ADC {t4} AL N=carol@example.com"]
    with pytest.raises(LookupError):
        ns.remove_from_list(ListBit.FL, "nobody@example.com")


def test_pushed_reverse_list_changes() -> None:
    ns, _ = logged_in_and_synced()
    events = ns.receive_data(wire("ADC 0 RL N=frank@example.com F=Frank", "REM 0 RL dave@example.com"), 0)
    assert events == [
        ListChanged(ListBit.RL, "frank@example.com", True, ListBit.RL, "Frank", None, None),
        ListChanged(ListBit.RL, "dave@example.com", False, ListBit(0), None, None, None),
    ]
    assert ns.receive_data(wire("BPR bob@example.com PHM 0612"), 0) == [
        ContactPropertyChanged("bob@example.com", "PHM", "0612")
    ]


def test_switchboard_request_and_errors_correlate_by_trid() -> None:
    ns, _ = logged_in_and_synced()
    t1 = ns.request_switchboard()
    t2 = ns.request_switchboard()
    assert sent(ns) == [f"XFR {t1} SB", f"XFR {t2} SB"]
    events = ns.receive_data(wire(f"913 {t2}", f"XFR {t1} SB 127.0.0.1:1864 CKI 17262740.1050826919"), 0)
    assert events == [
        CommandFailed(t2, "XFR", 913, "913 not allowed while offline or hidden"),
        SwitchboardGranted(t1, "127.0.0.1", 1864, "17262740.1050826919"),
    ]
    t3 = ns.add_to_list(ListBit.FL, "ghost@example.com")
    assert ns.receive_data(wire(f"205 {t3}"), 0) == [
        CommandFailed(t3, "ADC", 205, "205 invalid principal (no such user)")
    ]


def test_keepalive_by_timer_and_qng() -> None:
    ns, _ = logged_in_and_synced()  # LIVE at t=1.0
    assert ns.get_timer() == pytest.approx(46.0)
    assert ns.handle_timer(10) == [] and sent(ns) == []
    ns.handle_timer(46)
    assert sent(ns) == ["PNG"]
    assert ns.get_timer() == pytest.approx(76.0)
    ns.receive_data(wire("QNG 40"), 50)
    assert ns.get_timer() == pytest.approx(90.0)
    ns.handle_timer(90)
    assert sent(ns) == ["PNG"]
    assert ns.handle_timer(120) == [ConnectionLost("no QNG within 30 s of PNG")]
    assert ns.state is NsState.CLOSED


def test_challenge_is_answered_with_qry() -> None:
    ns, _ = logged_in_and_synced()
    assert ns.receive_data(wire("CHL 0 13038318816579321232"), 0) == []
    assert ns.data_to_send() == b"QRY 7 PROD0090YUAUV{2B 32\r\nb01c13020e374d4fa20abfad6981b7a9"
    assert ns.receive_data(wire("QRY 7"), 0) == [CommandAccepted(7, "QRY")]


def test_out_oth() -> None:
    ns, _ = logged_in_and_synced()
    assert ns.receive_data(wire("OUT OTH"), 0) == [SignedOutElsewhere()]
    assert ns.state is NsState.CLOSED


def test_dialect_refused_names_what_server_offers() -> None:
    ns = NotificationConnection("alice@example.com")
    ns.start()
    ns.data_to_send()
    [event] = ns.receive_data(wire("VER 1 MSNP8 CVR0"), 0)
    assert event == LoginFailed(LoginFailure.DIALECT, "server only offers MSNP8; this gateway needs MSNP12")
    ns2 = NotificationConnection("alice@example.com")
    ns2.start()
    [event] = ns2.receive_data(wire("VER 1 0"), 0)
    assert isinstance(event, LoginFailed) and event.failure is LoginFailure.DIALECT


def test_redirect_and_auth_failure() -> None:
    ns = NotificationConnection("alice@example.com")
    ns.start()
    ns.receive_data(wire("VER 1 MSNP12", "CVR 2 7 7 7 a b"), 0)
    assert ns.receive_data(wire("XFR 3 NS 10.0.0.5:1863 0 10.0.0.1:1863"), 0) == [
        Redirected("10.0.0.5", 1863)
    ]
    ns = NotificationConnection("alice@example.com")
    login_until_ticket(ns)
    ns.supply_ticket("t=bad")
    [event] = ns.receive_data(wire("911 4"), 0)
    assert event == LoginFailed(
        LoginFailure.BAD_CREDENTIALS, "server refused USR: 911 authentication failed", 911
    )


def login_until_ticket(ns: NotificationConnection) -> None:
    ns.start()
    ns.receive_data(wire("VER 1 MSNP12", "CVR 2 7 7 7 a b", "USR 3 TWN S chal"), 0)
    ns.data_to_send()


def test_split_reads_and_garbage_do_not_break_the_session() -> None:
    ns, _ = logged_in_and_synced()
    data = wire("NLN BSY bob@example.com Bob 0", "\xff\xfe garbage", "FLN bob@example.com")
    events = []
    for i in range(len(data)):
        events += ns.receive_data(data[i : i + 1], 0)
    statuses = [e.status for e in events if isinstance(e, PresenceChanged)]
    assert statuses == [Status.BSY, Status.FLN]
    assert ns.state is NsState.LIVE
