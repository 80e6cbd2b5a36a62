"""Sans-I/O TCP: RFC 9293 with RFC 7323 (window scale, timestamps, PAWS), RFC 2018/6675
(SACK and SACK recovery), RFC 6298 (RTO), RFC 5681/6582/3042 (NewReno), RFC 9438 (CUBIC),
RFC 6937 (PRR), RFC 8985 (tail loss probes, RACK-style loss marking), RFC 5961 (blind
attacks), RFC 6528 (ISNs), RFC 6056 (ports) and RFC 4987 (SYN cookies).

Where is the rule for ... (one concern per module; ``TcpConnection`` is the last of its parts):

* a segment with no connection (RFC 9293 §3.10.7.1), demultiplexing, ports (RFC 6056),
  the timer heap: ``layer``; LISTEN (§3.10.7.2) and SYN cookies (RFC 4987): ``listener``;
* an incoming segment for a connection: ``ingress`` (header prediction, SYN-SENT
  §3.10.7.3, the §3.10.7.4 steps, PAWS, RFC 5961, TIME-WAIT reuse RFC 6191);
* ACK processing (step five: SND.UNA, send window, RTT samples, congestion hooks,
  HyStart++, FIN acknowledged): ``ack``;
* loss recovery (SACK scoreboard, IsLost, RACK marking, PRR, NewReno, retransmitting
  what is lost): ``recovery``;
* received text and FIN, the out-of-order queue, delayed ACKs, window updates after a
  read: ``receive`` (the queue itself: ``reassembly``; the bytes: ``receive_buffer``);
* what to send now (cwnd, peer window, Nagle, SWS, TSO quanta, FIN): ``send`` (the
  bytes: ``send_buffer``);
* building one segment (window field, options, checksum, TSO hand-down): ``egress``;
* RTO, tail loss probe, persist, keepalive, delayed-ACK, FIN-WAIT-2, TIME-WAIT
  deadlines: ``timers`` (the RTO value: ``rtt``);
* our SYN and the options it offers, the peer's SYN options: ``opening``; window-scale
  arithmetic: ``options``;
* the application's calls (send, receive, close, abort, half-close, keepalive,
  Nagle), opening calls, ICMP errors: ``connection``;
* the states, and which states allow what: ``state``; the fields of a connection and
  the one place its state changes (``_set_state``, TIME-WAIT, the end): ``tcb``;
* cwnd: ``congestion/`` (NewReno, CUBIC); keyed hashes for ISNs, ports, timestamp
  offsets and cookies: ``secrets``; what the layer tells drivers: ``events``.

Driver contract: feed segments with ``receive_segment`` (it only updates state; replies
and ACKs go out at the next ``flush``, so a batch of segments is acknowledged once), call
``flush(now)`` once per batch or tick, and keep one timer at ``get_timer()`` that calls
``handle_timer(now)`` (early or repeated calls are harmless).
"""

from __future__ import annotations

from .connection import TcpConnection
from .events import (
    TcpAccepted,
    TcpClosed,
    TcpConnected,
    TcpEndpoint,
    TcpEofReceived,
    TcpListenerEndpoint,
    TcpReadable,
    TcpWritable,
)
from .layer import TcpLayer, TcpListener
from .state import TcpState

__all__ = [
    "TcpAccepted",
    "TcpClosed",
    "TcpConnected",
    "TcpConnection",
    "TcpEndpoint",
    "TcpEofReceived",
    "TcpLayer",
    "TcpListener",
    "TcpListenerEndpoint",
    "TcpReadable",
    "TcpState",
    "TcpWritable",
]
