"""SMPP 3.4 PDU codec: :func:`encode` a PDU to bytes, :func:`decode` one frame. Pure.

Every PDU is ``header(16) + body``; the header is ``command_length, command_id,
command_status, sequence_number`` (big-endian u32). :func:`decode` raises
:class:`PduError` carrying the sequence number and the status to answer with, so the
caller can send ``generic_nack`` and go on. Unknown TLVs are kept as raw ``Tlv``.
"""

from __future__ import annotations

import struct

from transports.sms.pdu import (
    RESPONSE_BIT,
    AlertNotification,
    Bind,
    BindMode,
    BindResp,
    Command,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Pdu,
    ShortMessage,
    SubmitSm,
    SubmitSmResp,
    Tlv,
    Unbind,
    UnbindResp,
)
from transports.sms.status import Status

HEADER = struct.Struct(">IIII")


class PduError(ValueError):
    """A frame that cannot be decoded; answer it with generic_nack(``status``)."""

    def __init__(self, sequence: int, command_id: int, status: int, reason: str) -> None:
        super().__init__(reason)
        self.sequence = sequence
        self.command_id = command_id
        self.status = status
        self.reason = reason


# ---------------------------------------------------------------- encoding

# Maximum C-Octet String sizes including the NUL (SMPP 3.4 section 4).
_MAX = {
    "system_id": 16, "password": 9, "system_type": 13, "address_range": 41,
    "service_type": 6, "addr": 21, "time": 17, "message_id": 65, "esme_addr": 65,
}  # fmt: skip


def _cstr(value: str, kind: str) -> bytes:
    raw = value.encode("latin-1")
    if len(raw) + 1 > _MAX[kind] or b"\x00" in raw:
        raise ValueError(f"{kind} {value!r} longer than {_MAX[kind] - 1} octets or has NUL")
    return raw + b"\x00"


def _tlvs(tlvs: tuple[Tlv, ...]) -> bytes:
    return b"".join(struct.pack(">HH", t.tag, len(t.value)) + t.value for t in tlvs)


def _sm_body(p: ShortMessage) -> bytes:
    if len(p.short_message) > 254:
        raise ValueError("short_message exceeds 254 octets; use the message_payload TLV")
    return b"".join(
        [
            _cstr(p.service_type, "service_type"),
            bytes([p.source_addr_ton, p.source_addr_npi]),
            _cstr(p.source_addr, "addr"),
            bytes([p.dest_addr_ton, p.dest_addr_npi]),
            _cstr(p.destination_addr, "addr"),
            bytes([p.esm_class, p.protocol_id, p.priority_flag]),
            _cstr(p.schedule_delivery_time, "time"),
            _cstr(p.validity_period, "time"),
            bytes([p.registered_delivery, p.replace_if_present_flag, p.data_coding]),
            bytes([p.sm_default_msg_id, len(p.short_message)]),
            p.short_message,
            _tlvs(p.tlvs),
        ]
    )


def command_id_of(pdu: Pdu) -> int:
    match pdu:
        case Bind():
            return int(pdu.mode)
        case BindResp():
            return int(pdu.mode) | RESPONSE_BIT
        case SubmitSm() | DeliverSm():
            return int(pdu.command)
        case SubmitSmResp():
            return Command.SUBMIT_SM_RESP
        case DeliverSmResp():
            return Command.DELIVER_SM_RESP
        case Unbind():
            return Command.UNBIND
        case UnbindResp():
            return Command.UNBIND_RESP
        case EnquireLink():
            return Command.ENQUIRE_LINK
        case EnquireLinkResp():
            return Command.ENQUIRE_LINK_RESP
        case GenericNack():
            return Command.GENERIC_NACK
        case AlertNotification():
            return Command.ALERT_NOTIFICATION


def _body(pdu: Pdu) -> tuple[int, bytes]:
    """(command_status, body) of ``pdu``."""
    match pdu:
        case Bind():
            return 0, b"".join(
                [
                    _cstr(pdu.system_id, "system_id"),
                    _cstr(pdu.password, "password"),
                    _cstr(pdu.system_type, "system_type"),
                    bytes([pdu.interface_version, pdu.addr_ton, pdu.addr_npi]),
                    _cstr(pdu.address_range, "address_range"),
                ]
            )
        case BindResp():
            return pdu.status, _cstr(pdu.system_id, "system_id") + _tlvs(pdu.tlvs)
        case SubmitSm() | DeliverSm():
            return 0, _sm_body(pdu)
        case SubmitSmResp() | DeliverSmResp():
            if pdu.status and not pdu.message_id:
                return pdu.status, b""  # 3.4 section 4.4.2: no body on error
            return pdu.status, _cstr(pdu.message_id, "message_id")
        case Unbind() | EnquireLink():
            return 0, b""
        case UnbindResp() | EnquireLinkResp() | GenericNack():
            return pdu.status, b""
        case AlertNotification():
            return 0, b"".join(
                [
                    bytes([pdu.source_addr_ton, pdu.source_addr_npi]),
                    _cstr(pdu.source_addr, "esme_addr"),
                    bytes([pdu.esme_addr_ton, pdu.esme_addr_npi]),
                    _cstr(pdu.esme_addr, "esme_addr"),
                    _tlvs(pdu.tlvs),
                ]
            )


def encode(pdu: Pdu) -> bytes:
    """Bytes of one PDU, header included. Raises ValueError on out-of-range fields."""
    status, body = _body(pdu)
    return HEADER.pack(16 + len(body), command_id_of(pdu), status, pdu.sequence) + body


# ---------------------------------------------------------------- decoding


class _Truncated(Exception):
    pass


class _Reader:
    """A cursor over a PDU body; running off the end raises _Truncated."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.pos = 0

    def u8(self) -> int:
        if self.pos >= len(self.body):
            raise _Truncated("body ends inside a 1-octet field")
        self.pos += 1
        return self.body[self.pos - 1]

    def cstr(self) -> str:
        end = self.body.find(b"\x00", self.pos)
        if end < 0:
            raise _Truncated("C-Octet String without NUL terminator")
        value = self.body[self.pos : end].decode("latin-1")
        self.pos = end + 1
        return value

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.body):
            raise _Truncated(f"body ends inside a {n}-octet field")
        self.pos += n
        return self.body[self.pos - n : self.pos]

    def at_end(self) -> bool:
        return self.pos >= len(self.body)

    def tlvs(self) -> tuple[Tlv, ...]:
        out: list[Tlv] = []
        while not self.at_end():
            if self.pos + 4 > len(self.body):
                raise _BadTlv("TLV header cut short")
            tag, length = struct.unpack_from(">HH", self.body, self.pos)
            if self.pos + 4 + length > len(self.body):
                raise _BadTlv(f"TLV 0x{tag:04X} length {length} runs past the PDU")
            out.append(Tlv(tag, self.body[self.pos + 4 : self.pos + 4 + length]))
            self.pos += 4 + length
        return tuple(out)


class _BadTlv(Exception):
    pass


def _decode_sm(r: _Reader, sequence: int, cls: type[SubmitSm] | type[DeliverSm]) -> Pdu:
    service_type = r.cstr()
    src_ton, src_npi, src = r.u8(), r.u8(), r.cstr()
    dst_ton, dst_npi, dst = r.u8(), r.u8(), r.cstr()
    esm_class, protocol_id, priority_flag = r.u8(), r.u8(), r.u8()
    schedule, validity = r.cstr(), r.cstr()
    registered, replace, coding, default_id = r.u8(), r.u8(), r.u8(), r.u8()
    short_message = r.take(r.u8())
    return cls(
        sequence=sequence, service_type=service_type,
        source_addr_ton=src_ton, source_addr_npi=src_npi, source_addr=src,
        dest_addr_ton=dst_ton, dest_addr_npi=dst_npi, destination_addr=dst,
        esm_class=esm_class, protocol_id=protocol_id, priority_flag=priority_flag,
        schedule_delivery_time=schedule, validity_period=validity,
        registered_delivery=registered, replace_if_present_flag=replace,
        data_coding=coding, sm_default_msg_id=default_id,
        short_message=short_message, tlvs=r.tlvs(),
    )  # fmt: skip


_BIND_REQUESTS = {int(m): m for m in BindMode}
_BIND_RESPONSES = {int(m) | RESPONSE_BIT: m for m in BindMode}


def _decode_body(command_id: int, status: int, sequence: int, r: _Reader) -> Pdu:
    if command_id in _BIND_REQUESTS:
        return Bind(
            mode=_BIND_REQUESTS[command_id], sequence=sequence, system_id=r.cstr(),
            password=r.cstr(), system_type=r.cstr(), interface_version=r.u8(),
            addr_ton=r.u8(), addr_npi=r.u8(), address_range=r.cstr(),
        )  # fmt: skip
    if command_id in _BIND_RESPONSES:
        mode = _BIND_RESPONSES[command_id]
        system_id = "" if status and r.at_end() else r.cstr()
        return BindResp(mode=mode, sequence=sequence, status=status, system_id=system_id, tlvs=r.tlvs())
    match command_id:
        case Command.SUBMIT_SM:
            return _decode_sm(r, sequence, SubmitSm)
        case Command.DELIVER_SM:
            return _decode_sm(r, sequence, DeliverSm)
        case Command.SUBMIT_SM_RESP | Command.DELIVER_SM_RESP:
            message_id = "" if r.at_end() else r.cstr()
            resp = SubmitSmResp if command_id == Command.SUBMIT_SM_RESP else DeliverSmResp
            return resp(sequence=sequence, status=status, message_id=message_id)
        case Command.UNBIND:
            return Unbind(sequence=sequence)
        case Command.UNBIND_RESP:
            return UnbindResp(sequence=sequence, status=status)
        case Command.ENQUIRE_LINK:
            return EnquireLink(sequence=sequence)
        case Command.ENQUIRE_LINK_RESP:
            return EnquireLinkResp(sequence=sequence, status=status)
        case Command.GENERIC_NACK:
            return GenericNack(sequence=sequence, status=status)
        case Command.ALERT_NOTIFICATION:
            return AlertNotification(
                sequence=sequence, source_addr_ton=r.u8(), source_addr_npi=r.u8(),
                source_addr=r.cstr(), esme_addr_ton=r.u8(), esme_addr_npi=r.u8(),
                esme_addr=r.cstr(), tlvs=r.tlvs(),
            )  # fmt: skip
    raise PduError(sequence, command_id, Status.ESME_RINVCMDID, f"unsupported command_id 0x{command_id:08X}")


def decode(frame: bytes) -> Pdu:
    """Decode exactly one PDU (``len(frame)`` must equal its command_length)."""
    if len(frame) < 16:
        raise PduError(0, 0, Status.ESME_RINVCMDLEN, f"frame of {len(frame)} octets < header")
    length, command_id, status, sequence = HEADER.unpack_from(frame)
    if length != len(frame):
        raise PduError(
            sequence, command_id, Status.ESME_RINVCMDLEN,
            f"command_length {length} but frame has {len(frame)} octets",
        )  # fmt: skip
    try:
        return _decode_body(command_id, status, sequence, _Reader(frame[16:]))
    except PduError:
        raise
    except _Truncated as exc:
        raise PduError(sequence, command_id, Status.ESME_RINVCMDLEN, str(exc)) from None
    except _BadTlv as exc:
        raise PduError(sequence, command_id, Status.ESME_RINVOPTPARSTREAM, str(exc)) from None
    except ValueError as exc:  # e.g. an out-of-range enum value
        raise PduError(sequence, command_id, Status.ESME_RSYSERR, str(exc)) from None
