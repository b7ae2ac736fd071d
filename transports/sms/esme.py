"""An SMPP 3.4 ESME bound as transceiver: the thin asyncio layer around the pure codec.

What it guarantees to the caller (the gateway's SMS adapter):

* ``submit()`` never raises for network reasons and never retries on its own: it
  returns a :class:`SubmitOutcome` and the caller's durable outbox decides. Throttling
  (ESME_RTHROTTLED, ESME_RMSGQFUL), "not bound", time-outs and lost connections are
  ``retryable``. **Submits while unbound fail fast** (retryable, ``status=None``)
  rather than wait for the bind: the outbox already waits, better than a second queue
  here. ``maybe_sent`` says the PDU left and no answer came, so a retry may duplicate.
* A ``deliver_sm`` is answered only after ``on_deliver`` returned, with the status it
  returned (an exception becomes ESME_RSYSERR and a log line). Callbacks run one at a
  time, in arrival order. A deliver_sm whose connection died before its turn is not
  passed on: it was never acknowledged, so the SMSC delivers it again. While
  ``on_deliver`` runs, :data:`CURRENT_ARRIVAL` says which bind the PDU came on and, later,
  when its answer was written and confirmed: right after answering, the ESME sends an
  ``enquire_link`` whose response proves the SMSC read the answer (see
  :mod:`transports.sms.redelivery`, which tells a redelivery from a new message by it).
* The link repairs itself: reconnect and rebind with capped exponential backoff and
  jitter; enquire_link every ``enquire_link_s``, an unanswered one ends the link.
  Bind state changes are reported to ``on_link`` (must not block).
* Undecodable input gets a generic_nack and the session goes on.
* Passwords and message bodies are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import replace

from transports.sms.codec import encode
from transports.sms.esme_types import (
    AlertHandler,
    BindFailed,
    Bound,
    DeliverHandler,
    EsmeConfig,
    LinkEvent,
    SubmitOutcome,
    Unbound,
)
from transports.sms.framing import FrameError, Framer
from transports.sms.pdu import (
    AlertNotification,
    Bind,
    BindMode,
    BindResp,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Pdu,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
)
from transports.sms.redelivery import AnswerLedger, Arrival
from transports.sms.status import BIND_HINTS, Status, is_retryable, status_name

__all__ = ["BindFailed", "Bound", "Esme", "EsmeConfig", "LinkEvent", "SubmitOutcome", "Unbound"]

log = logging.getLogger(__name__)
DELIVER_CONCURRENCY = 32
CURRENT_ARRIVAL: ContextVar[Arrival | None] = ContextVar("deliver_sm_arrival", default=None)
"""Set by the ESME while ``on_deliver`` handles a deliver_sm: how it arrived and (filled in
later, the object is shared) when its answer was written and confirmed."""


class _LinkLost(Exception):
    pass


class _Session:
    """One TCP connection: its writer, outstanding requests and end signal."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.outgoing: list[bytes] = []  # PDUs sent in this turn of the event loop
        self.pending: dict[int, asyncio.Future[Pdu]] = {}
        self.ended = asyncio.Event()
        self.reason = ""
        self.delivers: asyncio.Queue[tuple[DeliverSm, Arrival] | None] = asyncio.Queue()
        self.bind = 0  # the AnswerLedger's number of this bind, once bound
        self.confirming = False  # an enquire_link confirming answers is in flight
        self.confirm_again = False  # answers were written since it left

    def end(self, reason: str) -> None:
        if not self.ended.is_set():
            self.reason = reason
            self.ended.set()
            for fut in self.pending.values():
                if not fut.done():
                    fut.set_exception(_LinkLost(reason))
            self.delivers.put_nowait(None)

    async def send(self, pdu: Pdu) -> None:
        """Queue ``pdu`` for the socket. The PDUs sent in one turn of the event loop go out
        in one write at the end of it (a write is a system call: under load, many submit_sm
        and deliver_sm_resp share one), in the order they were sent."""
        if self.ended.is_set():
            raise _LinkLost(self.reason)
        self.outgoing.append(encode(pdu))
        if len(self.outgoing) == 1:
            asyncio.get_running_loop().call_soon(self.flush)
        try:
            await self.writer.drain()
        except (ConnectionError, RuntimeError) as exc:
            self.end(f"write failed: {exc.__class__.__name__}")
            raise _LinkLost(self.reason) from None

    def flush(self) -> None:
        """Write what was sent so far (a failure ends the session: its requests fail)."""
        if not self.outgoing:
            return
        data, self.outgoing = b"".join(self.outgoing), []
        try:
            self.writer.write(data)
        except (ConnectionError, RuntimeError) as exc:
            self.end(f"write failed: {exc.__class__.__name__}")


class Esme:
    """See the module docstring. Start with :meth:`start`, stop with :meth:`close`."""

    def __init__(
        self,
        config: EsmeConfig,
        on_deliver: DeliverHandler,
        *,
        on_link: Callable[[LinkEvent], None] | None = None,
        on_alert: AlertHandler | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._on_deliver = on_deliver
        self._on_link = on_link
        self._on_alert = on_alert
        self._sleep = sleep
        self._rand = rand
        self._clock = clock
        self.answers = AnswerLedger()
        self._session: _Session | None = None
        self._bound = asyncio.Event()
        self._closing = False
        self._runner: asyncio.Task[None] | None = None
        self._workers: set[asyncio.Task[None]] = set()
        self._window = asyncio.Semaphore(config.window)
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._sequence = 0
        self._rate_lock = asyncio.Lock()
        self._next_slot = 0.0
        self._failure = ""  # why the last bind attempt failed, for the retry's log line

    # ----------------------------------------------------------- public surface

    @property
    def bound(self) -> bool:
        return self._bound.is_set()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def start(self) -> None:
        """Begin connecting in the background; bind state arrives via ``on_link``."""
        if self._runner is None:
            self._runner = asyncio.create_task(self._run(), name="esme")

    async def wait_bound(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._bound.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def submit(self, pdu: SubmitSm) -> SubmitOutcome:
        """Send one submit_sm (its ``sequence`` is assigned here) and await the answer."""
        if self._closing:
            return SubmitOutcome(None, None, True, "ESME is closing")
        if not self.bound:
            return SubmitOutcome(None, None, True, "not bound to the SMSC (reconnecting)")
        async with self._window:
            session = self._session
            if session is None or not self.bound or self._closing:
                return SubmitOutcome(None, None, True, "not bound to the SMSC (reconnecting)")
            await self._pace()
            self._in_flight += 1
            self._idle.clear()
            try:
                resp = await self._request(session, replace(pdu, sequence=self._next_seq()))
            except ValueError as exc:
                return SubmitOutcome(None, None, False, f"invalid submit_sm: {exc}")
            except TimeoutError:
                return SubmitOutcome(None, None, True, "no submit_sm_resp in time", True)
            except _LinkLost as exc:
                return SubmitOutcome(None, None, True, f"link lost before answer: {exc}", True)
            finally:
                self._in_flight -= 1
                if self._in_flight == 0:
                    self._idle.set()
        match resp:
            case SubmitSmResp(status=Status.ESME_ROK):
                return SubmitOutcome(resp.status, resp.message_id, False, "accepted")
            case SubmitSmResp() | GenericNack():
                retry = is_retryable(resp.status)
                return SubmitOutcome(resp.status, None, retry, status_name(resp.status))
            case _:
                return SubmitOutcome(None, None, True, f"unexpected answer {type(resp).__name__}")

    async def close(self) -> None:
        """Unbind gracefully: wait (bounded) for answers in flight, unbind, disconnect."""
        self._closing = True
        timeout = self.config.close_timeout_s
        session = self._session
        if session is not None and self.bound:
            try:
                await asyncio.wait_for(self._idle.wait(), timeout)
            except TimeoutError:
                log.warning("closing with %d submit_sm still unanswered", self._in_flight)
            with contextlib.suppress(TimeoutError, _LinkLost):
                await self._request(session, Unbind(sequence=self._next_seq()), timeout)
        if session is not None:
            session.end("closed by the application")
        if self._runner is not None:
            if session is not None:  # let the loop report Unbound and clean up
                await asyncio.wait({self._runner}, timeout=timeout)
            self._runner.cancel()  # connecting or in a backoff sleep: nothing to wait for
            await asyncio.wait({self._runner}, timeout=timeout)
        if self._workers:
            await asyncio.wait(self._workers, timeout=timeout)

    # ----------------------------------------------------------- connection loop

    async def _run(self) -> None:
        attempt = 0
        while not self._closing:
            self._failure = ""
            try:
                was_bound = await self._connect_and_serve()
            except Exception as exc:  # a bug here must not end the link for good
                log.exception("ESME connection loop failed")
                self._report(BindFailed(f"internal error: {exc.__class__.__name__}"))
                was_bound = False
            if self._closing:
                break
            attempt = 0 if was_bound else attempt + 1
            delay = self._backoff_delay(attempt)
            if self._failure:  # the one line an operator gets per failed (re)bind
                log.warning("SMSC bind failed: %s; retrying in %.1fs", self._failure, delay)
            else:
                log.info("reconnecting to %s:%d in %.1fs", self.config.host, self.config.port, delay)
            await self._sleep(delay)

    def _backoff_delay(self, attempt: int) -> float:
        """Capped exponential backoff with "equal jitter": half fixed, half random."""
        c = self.config
        base = min(c.backoff_max_s, c.backoff_initial_s * 2.0 ** max(0, attempt - 1))
        return base / 2 + self._rand() * base / 2

    async def _connect_and_serve(self) -> bool:
        c = self.config
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(c.host, c.port), c.connect_timeout_s
            )
        except (OSError, TimeoutError) as exc:
            self._report(BindFailed(f"cannot connect to {c.host}:{c.port}: {exc!r}"))
            return False
        session = _Session(writer)
        self._session = session
        reader_task = asyncio.create_task(self._read_loop(session, reader))
        was_bound = False
        try:
            was_bound = await self._bind(session)
            if was_bound:
                self._spawn(self._deliver_worker(session))
                keepalive = asyncio.create_task(self._keepalive(session))
                await session.ended.wait()
                keepalive.cancel()
        finally:
            session.end(session.reason or "bind did not complete")
            self._bound.clear()
            self._session = None
            reader_task.cancel()
            session.flush()  # an unbind_resp sent just before
            writer.close()
            if was_bound:
                log.info("unbound from SMSC: %s", session.reason)
                self._report(Unbound(session.reason))
        return was_bound

    async def _bind(self, session: _Session) -> bool:
        c = self.config
        bind = Bind(
            mode=BindMode.TRANSCEIVER, sequence=self._next_seq(), system_id=c.system_id,
            password=c.password, system_type=c.system_type, interface_version=0x34,
        )  # fmt: skip
        try:
            resp = await self._request(session, bind)
        except TimeoutError:
            self._report(BindFailed("no bind_transceiver_resp in time"))
            return False
        except _LinkLost as exc:
            self._report(BindFailed(f"connection lost during bind: {exc}"))
            return False
        if isinstance(resp, BindResp | GenericNack) and resp.status != Status.ESME_ROK:
            hint = BIND_HINTS.get(resp.status)
            reason = f"bind refused: {status_name(resp.status)}" + (f", {hint}" if hint else "")
            self._report(BindFailed(f"{reason} (system_id {c.system_id!r})", resp.status))
            return False
        smsc = resp.system_id if isinstance(resp, BindResp) else ""
        log.info("bound to SMSC %r at %s:%d as %r", smsc, c.host, c.port, c.system_id)
        session.bind = self.answers.new_bind()
        self._bound.set()
        self._report(Bound(smsc))
        return True

    async def _keepalive(self, session: _Session) -> None:
        while not session.ended.is_set():
            await asyncio.sleep(self.config.enquire_link_s)
            try:
                await self._request(session, EnquireLink(sequence=self._next_seq()))
            except TimeoutError:
                session.end("enquire_link not answered in time; link considered dead")
            except _LinkLost:
                return

    # ----------------------------------------------------------- inbound

    async def _read_loop(self, session: _Session, reader: asyncio.StreamReader) -> None:
        framer = Framer()
        try:
            while not session.ended.is_set():
                data = await reader.read(65536)
                if not data:
                    session.end("connection closed by the SMSC")
                    return
                for item in framer.feed(data):
                    await self._dispatch(session, item)
        except _LinkLost:
            return
        except (ConnectionError, OSError) as exc:
            session.end(f"read failed: {exc!r}")

    async def _dispatch(self, session: _Session, item: Pdu | FrameError) -> None:
        match item:
            case FrameError():
                log.warning("undecodable PDU from SMSC (%s); generic_nack", item.reason)
                await session.send(GenericNack(sequence=item.sequence, status=item.status))
            case DeliverSm():
                session.delivers.put_nowait((item, self.answers.arrived(session.bind, self._clock())))
            case EnquireLink():
                await session.send(EnquireLinkResp(sequence=item.sequence))
            case Unbind():
                await session.send(UnbindResp(sequence=item.sequence))
                session.end("the SMSC unbound")
            case AlertNotification():
                if self._on_alert is not None:
                    self._spawn(self._on_alert(item))
            case SubmitSmResp() | BindResp() | EnquireLinkResp() | UnbindResp() | GenericNack():
                fut = session.pending.get(item.sequence)
                if fut is not None and not fut.done():
                    fut.set_result(item)
                else:
                    log.debug("answer to unknown sequence %d ignored", item.sequence)
            case _:
                await session.send(GenericNack(sequence=item.sequence, status=Status.ESME_RINVCMDID))

    async def _deliver_worker(self, session: _Session) -> None:
        """Hand deliver_sm to the application: in arrival order per source address, with
        up to ``DELIVER_CONCURRENCY`` sources at once (a slow commit for one sender does
        not hold the others back)."""
        lanes: dict[str, asyncio.Queue[tuple[DeliverSm, Arrival]]] = {}
        slots = asyncio.Semaphore(DELIVER_CONCURRENCY)

        async def lane(source: str, queue: asyncio.Queue[tuple[DeliverSm, Arrival]]) -> None:
            async with slots:
                while not queue.empty():
                    await self._answer_deliver(session, *queue.get_nowait())
            del lanes[source]

        while (item := await session.delivers.get()) is not None:
            if session.ended.is_set():
                return  # unacknowledged: the SMSC will deliver it again
            source = item[0].source_addr
            queue = lanes.get(source)
            if queue is None:
                queue = lanes[source] = asyncio.Queue()
                queue.put_nowait(item)
                self._spawn(lane(source, queue))
            else:
                queue.put_nowait(item)

    async def _answer_deliver(self, session: _Session, pdu: DeliverSm, arrival: Arrival) -> None:
        if session.ended.is_set():
            return  # unacknowledged: the SMSC will deliver it again
        token = CURRENT_ARRIVAL.set(arrival)
        try:
            status = await self._on_deliver(pdu)
        except Exception:
            log.exception("on_deliver failed; answering ESME_RSYSERR")
            status = Status.ESME_RSYSERR
        finally:
            CURRENT_ARRIVAL.reset(token)
        try:
            await session.send(DeliverSmResp(sequence=pdu.sequence, status=status))
        except _LinkLost:
            log.warning("deliver_sm_resp not sent, link lost; the SMSC should redeliver")
            return
        self.answers.answered(arrival, self._clock())
        self._confirm(session)

    def _confirm(self, session: _Session) -> None:
        """Have the answers written so far confirmed: an enquire_link right after them (one
        at a time; answers written while it is out get the next one). Its response says the
        SMSC read them, so it will not send those deliver_sm again."""
        if session.confirming:
            session.confirm_again = True
            return
        session.confirming = True

        async def confirm() -> None:
            try:
                while not session.ended.is_set():
                    session.confirm_again = False
                    with contextlib.suppress(TimeoutError, _LinkLost):  # the keep-alive judges the link
                        await self._request(session, EnquireLink(sequence=self._next_seq()))
                    if not session.confirm_again:
                        break
            finally:
                session.confirming = False

        self._spawn(confirm())

    # ----------------------------------------------------------- helpers

    async def _request(self, session: _Session, pdu: Pdu, timeout: float | None = None) -> Pdu:
        fut: asyncio.Future[Pdu] = asyncio.get_running_loop().create_future()
        session.pending[pdu.sequence] = fut
        mark = self.answers.mark(session.bind)  # the answers this request will confirm
        try:
            await session.send(pdu)
            resp = await asyncio.wait_for(fut, timeout or self.config.response_timeout_s)
            self.answers.confirm(session.bind, mark, self._clock())
            return resp
        finally:
            session.pending.pop(pdu.sequence, None)

    async def _pace(self) -> None:
        if not self.config.max_rate:
            return
        async with self._rate_lock:
            loop = asyncio.get_running_loop()
            wait = self._next_slot - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self._next_slot = max(loop.time(), self._next_slot) + 1 / self.config.max_rate

    def _next_seq(self) -> int:
        self._sequence = self._sequence % 0x7FFFFFFF + 1
        return self._sequence

    def _spawn(self, coro: Awaitable[None]) -> None:
        async def guarded() -> None:
            try:
                await coro
            except Exception:
                log.exception("ESME background task failed")

        task = asyncio.create_task(guarded())
        self._workers.add(task)
        task.add_done_callback(self._workers.discard)

    def _report(self, event: LinkEvent) -> None:
        if isinstance(event, BindFailed):
            self._failure = event.reason
        if self._on_link is not None:
            try:
                self._on_link(event)
            except Exception:
                log.exception("on_link callback failed")
