"""SMPP 3.4 PDUs as frozen dataclasses. Pure data, no I/O.

Only the PDUs an ESME bound as transceiver exchanges (and what a fake SMSC needs to
answer it) are modelled. Bytes ↔ PDU is :mod:`transports.sms.codec`; cutting a TCP
stream into frames is :mod:`transports.sms.framing`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import ClassVar


class Command(IntEnum):
    GENERIC_NACK = 0x80000000
    BIND_RECEIVER = 0x00000001
    BIND_RECEIVER_RESP = 0x80000001
    BIND_TRANSMITTER = 0x00000002
    BIND_TRANSMITTER_RESP = 0x80000002
    QUERY_SM = 0x00000003
    QUERY_SM_RESP = 0x80000003
    SUBMIT_SM = 0x00000004
    SUBMIT_SM_RESP = 0x80000004
    DELIVER_SM = 0x00000005
    DELIVER_SM_RESP = 0x80000005
    UNBIND = 0x00000006
    UNBIND_RESP = 0x80000006
    REPLACE_SM = 0x00000007
    REPLACE_SM_RESP = 0x80000007
    CANCEL_SM = 0x00000008
    CANCEL_SM_RESP = 0x80000008
    BIND_TRANSCEIVER = 0x00000009
    BIND_TRANSCEIVER_RESP = 0x80000009
    OUTBIND = 0x0000000B
    ENQUIRE_LINK = 0x00000015
    ENQUIRE_LINK_RESP = 0x80000015
    SUBMIT_MULTI = 0x00000021
    SUBMIT_MULTI_RESP = 0x80000021
    ALERT_NOTIFICATION = 0x00000102
    DATA_SM = 0x00000103
    DATA_SM_RESP = 0x80000103


KNOWN_COMMAND_IDS = frozenset(int(c) for c in Command)
RESPONSE_BIT = 0x80000000


class Tag(IntEnum):
    """Optional parameter (TLV) tags this gateway reads or writes."""

    RECEIPTED_MESSAGE_ID = 0x001E
    SAR_MSG_REF_NUM = 0x020C
    SAR_TOTAL_SEGMENTS = 0x020E
    SAR_SEGMENT_SEQNUM = 0x020F
    SC_INTERFACE_VERSION = 0x0210
    SET_DPF = 0x0421
    MS_AVAILABILITY_STATUS = 0x0422
    NETWORK_ERROR_CODE = 0x0423
    MESSAGE_PAYLOAD = 0x0424
    MESSAGE_STATE = 0x0427


@dataclass(frozen=True)
class Tlv:
    """One optional parameter; unknown tags are kept as they came."""

    tag: int
    value: bytes

    def as_int(self) -> int:
        return int.from_bytes(self.value, "big")

    def as_cstring(self) -> str:
        return self.value.split(b"\x00", 1)[0].decode("latin-1")

    @classmethod
    def of_int(cls, tag: int, value: int, size: int) -> Tlv:
        return cls(tag, value.to_bytes(size, "big"))


class BindMode(IntEnum):
    """Bind flavour, valued by the request's command_id."""

    RECEIVER = Command.BIND_RECEIVER
    TRANSMITTER = Command.BIND_TRANSMITTER
    TRANSCEIVER = Command.BIND_TRANSCEIVER


@dataclass(frozen=True, kw_only=True)
class Bind:
    mode: BindMode = BindMode.TRANSCEIVER
    sequence: int = 0
    system_id: str
    password: str = field(repr=False)
    system_type: str = ""
    interface_version: int = 0x34
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""


@dataclass(frozen=True, kw_only=True)
class BindResp:
    mode: BindMode = BindMode.TRANSCEIVER
    sequence: int = 0
    status: int = 0
    system_id: str = ""
    tlvs: tuple[Tlv, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ShortMessage:
    """Fields shared by submit_sm and deliver_sm (SMPP 3.4 sections 4.4.1 and 4.6.1)."""

    sequence: int = 0
    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""
    tlvs: tuple[Tlv, ...] = ()

    def tlv(self, tag: int) -> Tlv | None:
        """The first TLV with ``tag``, if any."""
        for t in self.tlvs:
            if t.tag == tag:
                return t
        return None


@dataclass(frozen=True, kw_only=True)
class SubmitSm(ShortMessage):
    command: ClassVar[Command] = Command.SUBMIT_SM


@dataclass(frozen=True, kw_only=True)
class DeliverSm(ShortMessage):
    command: ClassVar[Command] = Command.DELIVER_SM


@dataclass(frozen=True, kw_only=True)
class SubmitSmResp:
    sequence: int = 0
    status: int = 0
    message_id: str = ""


@dataclass(frozen=True, kw_only=True)
class DeliverSmResp:
    sequence: int = 0
    status: int = 0
    message_id: str = ""


@dataclass(frozen=True, kw_only=True)
class Unbind:
    sequence: int = 0


@dataclass(frozen=True, kw_only=True)
class UnbindResp:
    sequence: int = 0
    status: int = 0


@dataclass(frozen=True, kw_only=True)
class EnquireLink:
    sequence: int = 0


@dataclass(frozen=True, kw_only=True)
class EnquireLinkResp:
    sequence: int = 0
    status: int = 0


@dataclass(frozen=True, kw_only=True)
class GenericNack:
    sequence: int = 0
    status: int = 0


@dataclass(frozen=True, kw_only=True)
class AlertNotification:
    sequence: int = 0
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    esme_addr_ton: int = 0
    esme_addr_npi: int = 0
    esme_addr: str = ""
    tlvs: tuple[Tlv, ...] = ()


Pdu = (
    Bind
    | BindResp
    | SubmitSm
    | SubmitSmResp
    | DeliverSm
    | DeliverSmResp
    | Unbind
    | UnbindResp
    | EnquireLink
    | EnquireLinkResp
    | GenericNack
    | AlertNotification
)
