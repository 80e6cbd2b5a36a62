"""Sans-I/O TCP: RFC 9293 with RFC 7323 (window scale, timestamps, PAWS), RFC 2018/6675
(SACK and SACK recovery), RFC 6298 (RTO), RFC 5681/6582/3042 (NewReno), RFC 9438 (CUBIC),
RFC 6937 (PRR), RFC 8985 (tail loss probes, RACK-style loss marking), RFC 5961 (blind
attacks), RFC 6528 (ISNs), RFC 6056 (ports) and RFC 4987 (SYN cookies).

Modules:

* ``layer``      :class:`TcpLayer` (demultiplexing, listeners, ports, SYN cookies, one
  timer heap for every connection) and :class:`TcpListener`;
* ``connection`` :class:`TcpConnection`: the state machine (every state transition lives
  here), send side (retransmission queue, SACK scoreboard, loss recovery) and receive side;
* ``reassembly`` the bounded out-of-order queue and the SACK blocks it yields;
* ``rtt``        the RFC 6298 estimator; ``congestion/`` NewReno and CUBIC;
* ``secrets``    keyed hashes (ISN, ephemeral ports, timestamps offsets, SYN cookies);
* ``events``     what the layer appends to the stack's event queue.

Driver contract: feed segments with ``receive_segment`` (it only updates state; replies
and ACKs go out at the next ``flush``, so a batch of segments is acknowledged once), call
``flush(now)`` once per batch or tick, and keep one timer at ``get_timer()`` that calls
``handle_timer(now)`` (early or repeated calls are harmless).
"""

from __future__ import annotations

from .connection import TcpConnection, TcpState
from .events import TcpAccepted, TcpClosed, TcpConnected, TcpEofReceived, TcpReadable, TcpWritable
from .layer import TcpLayer, TcpListener

__all__ = [
    "TcpAccepted",
    "TcpClosed",
    "TcpConnected",
    "TcpConnection",
    "TcpEofReceived",
    "TcpLayer",
    "TcpListener",
    "TcpReadable",
    "TcpState",
    "TcpWritable",
]
