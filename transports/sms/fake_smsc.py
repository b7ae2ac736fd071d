"""A real SMPP 3.4 SMSC on loopback, for tests and demos. Built on our own codec.

It checks binds, records every submit_sm, answers with a message id, sends delivery
receipts, injects mobile-originated messages and records what the ESME answered. On
command it misbehaves the ways real SMSCs do: throttling, rejects, dropped or silent
links, garbage bytes, restarts. With ``redeliver=True`` it delivers an MO the way SMSCs
do: until the ESME's answer is read, sending the same deliver_sm again (a new sequence
number) when its response timer runs out and after a rebind; :meth:`withhold_responses` and
:meth:`lose_bind_on_responses` make that happen. Typical use from an async test::

    async with FakeSmsc(system_id="gw", password="pw") as smsc:
        ... connect an ESME to ("127.0.0.1", smsc.port) ...
        submits = await smsc.wait_for_submits(1)
        statuses = await smsc.inject_mo("33611111111", "33700000000", "hi", split="udh")

Runnable too: ``python -m transports.sms.fake_smsc --port 2775 --system-id gw --password pw``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import signal
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from transports.sms.codec import encode
from transports.sms.fake_mo import Split, mo_pdus
from transports.sms.framing import FrameError, Framer
from transports.sms.pdu import (
    AlertNotification,
    Bind,
    BindResp,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Pdu,
    SubmitSm,
    SubmitSmResp,
    Tag,
    Tlv,
    Unbind,
    UnbindResp,
)
from transports.sms.receipts import MESSAGE_STATE_OF, ReceiptState, format_receipt_text
from transports.sms.status import Status

log = logging.getLogger(__name__)
RESPONSE_TIMER_S = 2.5  # how long a redelivering deliver waits for deliver_sm_resp


@dataclass(frozen=True)
class RecordedSubmit:
    pdu: SubmitSm
    message_id: str  # "" when the submit was refused
    status: int

    @property
    def source_addr(self) -> str:
        return self.pdu.source_addr

    @property
    def destination_addr(self) -> str:
        return self.pdu.destination_addr

    @property
    def short_message(self) -> bytes:
        return self.pdu.short_message


@dataclass(frozen=True)
class BindAttempt:
    system_id: str
    status: int


class _Conn:
    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.bound = False
        self.pending: dict[int, asyncio.Future[int]] = {}
        self.held: list[Pdu | FrameError] | None = None  # input read late (withhold_responses)

    def send(self, pdu: Pdu) -> None:
        if not self.writer.is_closing():
            self.writer.write(encode(pdu))


class FakeSmsc:
    def __init__(
        self,
        *,
        system_id: str = "fakesmsc",
        password: str = "secret",
        host: str = "127.0.0.1",
        port: int = 0,
        receipt_state: ReceiptState = ReceiptState.DELIVRD,
        receipt_delay_s: float = 0.0,
        receipt_id_decimal: bool = False,
        seed: int = 0,
    ) -> None:
        self.system_id, self.password, self.host, self.port = system_id, password, host, port
        self.receipt_state = receipt_state
        self.receipt_delay_s = receipt_delay_s
        self.receipt_id_decimal = receipt_id_decimal
        self.submits: list[RecordedSubmit] = []
        self.binds: list[BindAttempt] = []
        self.mo_statuses: list[int] = []
        self.receipt_statuses: list[int] = []
        self.generic_nacks: list[GenericNack] = []
        self.redeliveries: list[DeliverSm] = []  # deliver_sm sent again, unanswered in time
        self.late_responses = 0  # answers read after their timer ran out: ignored
        self._withhold = 0
        self._lose_bind = 0
        self._timed_out: set[int] = set()  # deliver_sm sent again: their answers come late
        self.enquire_links = 0
        self.submits_seen = 0  # submit_sm received, answered or not (see stop_answering)
        self.silent = False
        self._rng = random.Random(seed)
        self._throttle_count = 0
        self._throttle_share = 0.0
        self._reject: list[int] = []
        self._server: asyncio.Server | None = None
        self._conns: set[_Conn] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._seq = 0
        self._ids = 0
        self._mo_ref = 0

    # --------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("fake SMSC listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        await self.drop_connections()
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def restart(self, down_s: float = 0.0) -> None:
        """Stop listening and drop every link, then listen again on the same port."""
        await self.stop()
        await asyncio.sleep(down_s)
        await self.start()

    async def __aenter__(self) -> FakeSmsc:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --------------------------------------------------------------- misbehaviour

    def throttle(self, *, count: int = 0, share: float = 0.0) -> None:
        """Answer ESME_RTHROTTLED to the next ``count`` submits and/or to a ``share``."""
        self._throttle_count, self._throttle_share = count, share

    def reject_next(self, status: int, count: int = 1) -> None:
        self._reject.extend([status] * count)

    def stop_answering(self, silent: bool = True) -> None:
        """Keep reading but answer nothing (not even enquire_link): a dead link."""
        self.silent = silent

    def withhold_responses(self, count: int = 1) -> None:
        """Read the next ``count`` deliver_sm_resp late: from each, hold all input of its
        link (later requests too) until the response timer ran out and the deliver_sm was
        sent again; then read it (the late answer is ignored). As an SMSC whose response
        timer fires while our answer is stuck on its way. Needs ``redeliver=True``."""
        self._withhold += count

    def lose_bind_on_responses(self, count: int = 1) -> None:
        """Lose the next ``count`` deliver_sm_resp with the bind: close the link without
        reading them, as when a link fails just as the answer is on its way. With
        ``redeliver=True`` the deliver_sm is sent again after the ESME binds again."""
        self._lose_bind += count

    async def drop_connections(self) -> None:
        for conn in list(self._conns):
            conn.writer.close()
        await asyncio.sleep(0)

    async def send_garbage(self, data: bytes = b"\xde\xad\xbe\xef garbage \x00\x01") -> None:
        for conn in self._bound_conns():
            conn.writer.write(data)
            await conn.writer.drain()

    # --------------------------------------------------------------- observation

    @property
    def bound_count(self) -> int:
        return len(self._bound_conns())

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Poll ``predicate`` until true; TimeoutError after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.005)

    async def wait_for_bind(self, timeout: float = 5.0, count: int = 1) -> None:
        """Until ``count`` successful binds happened since start (all restarts included)."""
        await self.wait_until(lambda: sum(b.status == 0 for b in self.binds) >= count, timeout)

    async def wait_for_submits(self, n: int, timeout: float = 5.0) -> list[RecordedSubmit]:
        await self.wait_until(lambda: len(self.submits) >= n, timeout)
        return list(self.submits)

    # --------------------------------------------------------------- SMSC → ESME

    async def deliver(
        self,
        pdu: DeliverSm,
        timeout: float = 5.0,
        *,
        redeliver: bool = False,
        response_timer_s: float = RESPONSE_TIMER_S,
    ) -> int:
        """Send one deliver_sm to the latest bound ESME; its deliver_sm_resp status. With
        ``redeliver``, send it again (new sequence number, same content) whenever no answer
        was read within ``response_timer_s`` or the link was lost first, the latter once an
        ESME is bound again; TimeoutError when no answer was read within ``timeout``."""
        if not redeliver:
            return await self.request(pdu, timeout)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        stalled: _Conn | None = None
        while True:
            await self.wait_until(lambda: bool(self._bound_conns()), deadline - loop.time())
            conn = self._bound_conns()[-1]
            seq, fut = self._send_request(conn, pdu)
            if stalled is not None:  # the copy is out: now read what was held, late
                self._release(stalled)
                stalled = None
            try:
                return await asyncio.wait_for(fut, min(response_timer_s, max(deadline - loop.time(), 0.0)))
            except TimeoutError:
                self._timed_out.add(seq)
                if loop.time() >= deadline:
                    raise
                stalled = conn if conn.held is not None else None
            except ConnectionError:
                pass  # the bind was lost before the answer was read
            finally:
                conn.pending.pop(seq, None)
            self.redeliveries.append(pdu)
            log.info("deliver_sm unanswered: sending it again")

    async def request(self, pdu: DeliverSm | EnquireLink | Unbind, timeout: float = 5.0) -> int:
        """Send a request to the latest bound ESME; the status of its answer."""
        conns = self._bound_conns()
        if not conns:
            raise RuntimeError("no ESME bound")
        conn = conns[-1]
        seq, fut = self._send_request(conn, pdu)
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            conn.pending.pop(seq, None)

    def _send_request(
        self, conn: _Conn, pdu: DeliverSm | EnquireLink | Unbind
    ) -> tuple[int, asyncio.Future[int]]:
        seq = self._next_seq()
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        conn.pending[seq] = fut
        conn.send(replace(pdu, sequence=seq))
        return seq, fut

    def _release(self, conn: _Conn) -> None:
        """Read the input held since a withheld response, in order."""
        held, conn.held = conn.held or [], None
        for item in held:
            self._on_item(conn, item)

    async def inject_mo(
        self,
        source: str,
        dest: str,
        text: str,
        *,
        coding: int = 0,
        split: Split = "udh",
        timeout: float = 5.0,
        redeliver: bool = False,
    ) -> list[int]:
        """Send ``text`` as MO, in several parts when long; deliver_sm_resp statuses.
        ``redeliver``: see :meth:`deliver`."""
        self._mo_ref = (self._mo_ref + 1) % 256
        statuses = [
            await (self.deliver(pdu, timeout, redeliver=True) if redeliver else self.deliver(pdu, timeout))
            for pdu in mo_pdus(source, dest, text, coding=coding, split=split, ref=self._mo_ref)
        ]
        self.mo_statuses.extend(statuses)
        return statuses

    async def send_alert(self, source: str, esme_addr: str, availability: int = 0) -> None:
        tlv = Tlv.of_int(Tag.MS_AVAILABILITY_STATUS, availability, 1)
        alert = AlertNotification(
            sequence=self._next_seq(), source_addr=source, esme_addr=esme_addr, tlvs=(tlv,)
        )
        for conn in self._bound_conns():
            conn.send(alert)

    # --------------------------------------------------------------- protocol

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Conn(writer)
        self._conns.add(conn)
        framer = Framer()
        try:
            while data := await reader.read(65536):
                for item in framer.feed(data):
                    self._on_item(conn, item)
        except (ConnectionError, OSError):
            pass
        finally:
            self._conns.discard(conn)
            for fut in conn.pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("ESME connection closed"))
            writer.close()

    def _on_item(self, conn: _Conn, item: Pdu | FrameError) -> None:
        if conn.held is not None:
            conn.held.append(item)
            return
        match item:
            case DeliverSmResp() if item.sequence in conn.pending and self._lose_bind:
                self._lose_bind -= 1  # lost with the bind: never read
                conn.bound = False
                conn.writer.close()
                return
            case DeliverSmResp() if item.sequence in conn.pending and self._withhold:
                self._withhold -= 1  # read late: the timer runs out first
                conn.held = [item]
                return
            case DeliverSmResp() | EnquireLinkResp() | UnbindResp() | GenericNack() if (
                item.sequence in conn.pending
            ):
                fut = conn.pending[item.sequence]
                if not fut.done():
                    fut.set_result(item.status)
                return
            case GenericNack():
                self.generic_nacks.append(item)
                return
            case DeliverSmResp() if item.sequence in self._timed_out:
                self._timed_out.discard(item.sequence)
                self.late_responses += 1  # its timer ran out and it was sent again: ignored
                return
            case EnquireLink():
                self.enquire_links += 1
            case SubmitSm():
                self.submits_seen += 1
        if self.silent:
            return
        match item:
            case FrameError():
                conn.send(GenericNack(sequence=item.sequence, status=item.status))
            case Bind():
                status = Status.ESME_ROK
                if item.system_id != self.system_id:
                    status = Status.ESME_RINVSYSID
                elif item.password != self.password:
                    status = Status.ESME_RINVPASWD
                self.binds.append(BindAttempt(item.system_id, status))
                conn.bound = status == Status.ESME_ROK
                resp = BindResp(mode=item.mode, sequence=item.sequence, status=status)
                conn.send(replace(resp, system_id=self.system_id) if conn.bound else resp)
            case SubmitSm():
                self._on_submit(conn, item)
            case EnquireLink():
                conn.send(EnquireLinkResp(sequence=item.sequence))
            case Unbind():
                conn.send(UnbindResp(sequence=item.sequence))
                conn.bound = False
                conn.writer.close()
            case _:
                conn.send(GenericNack(sequence=item.sequence, status=Status.ESME_RINVCMDID))

    def _on_submit(self, conn: _Conn, pdu: SubmitSm) -> None:
        status: int = Status.ESME_ROK
        if not conn.bound:
            status = Status.ESME_RINVBNDSTS
        elif self._reject:
            status = self._reject.pop(0)
        elif self._throttle_count > 0:
            self._throttle_count -= 1
            status = Status.ESME_RTHROTTLED
        elif self._throttle_share and self._rng.random() < self._throttle_share:
            status = Status.ESME_RTHROTTLED
        message_id = ""
        if status == Status.ESME_ROK:
            self._ids += 1
            message_id = format(0xA000 + self._ids, "X")
        self.submits.append(RecordedSubmit(pdu, message_id, status))
        log.info("submit_sm %s → %s: %s", pdu.source_addr, pdu.destination_addr, status)
        conn.send(SubmitSmResp(sequence=pdu.sequence, status=status, message_id=message_id))
        if message_id and pdu.registered_delivery & 0x03:
            task = asyncio.create_task(self._send_receipt(pdu, message_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send_receipt(self, submit: SubmitSm, message_id: str) -> None:
        await asyncio.sleep(self.receipt_delay_s)
        shown = str(int(message_id, 16)) if self.receipt_id_decimal else message_id
        stamp = datetime.now(UTC).strftime("%y%m%d%H%M")
        text = format_receipt_text(shown, self.receipt_state, submit_date=stamp, done_date=stamp)
        state = MESSAGE_STATE_OF[self.receipt_state]
        receipt = DeliverSm(
            source_addr=submit.destination_addr, destination_addr=submit.source_addr,
            esm_class=0x04, short_message=text.encode("ascii"),
            tlvs=(Tlv(Tag.RECEIPTED_MESSAGE_ID, shown.encode() + b"\x00"),
                  Tlv.of_int(Tag.MESSAGE_STATE, state, 1)),
        )  # fmt: skip
        try:
            self.receipt_statuses.append(await self.deliver(receipt))
        except (RuntimeError, ConnectionError, TimeoutError) as exc:
            log.info("receipt for %s not delivered: %r", message_id, exc)

    def _bound_conns(self) -> list[_Conn]:
        return [c for c in self._conns if c.bound and not c.writer.is_closing()]

    def _next_seq(self) -> int:
        self._seq = self._seq % 0x7FFFFFFF + 1
        return self._seq


def main() -> None:
    parser = argparse.ArgumentParser(description="Fake SMPP 3.4 SMSC for tests and demos")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2775)
    parser.add_argument("--system-id", default="fakesmsc")
    parser.add_argument("--password", default="secret")
    parser.add_argument("--receipt", default="DELIVRD", choices=[s.value for s in ReceiptState])
    parser.add_argument("--receipt-delay", type=float, default=0.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    async def serve() -> None:
        smsc = FakeSmsc(
            system_id=args.system_id, password=args.password, host=args.host, port=args.port,
            receipt_state=ReceiptState(args.receipt), receipt_delay_s=args.receipt_delay,
        )  # fmt: skip
        await smsc.start()
        print(f"listening on {smsc.host}:{smsc.port}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await smsc.stop()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
