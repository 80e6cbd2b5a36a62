"""Frozen configuration dataclasses.

Every bound the stack keeps (buffers, queues, tables) comes from here, so a
deployment can size the stack without touching code. Defaults follow the Linux
kernel where the kernel has an answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["InterceptConfig", "IpConfig", "ResolverConfig", "StackConfig", "TcpConfig"]


@dataclass(frozen=True, slots=True)
class IpConfig:
    """IP-layer settings."""

    #: Default TTL / hop limit of packets we originate (Linux ``ip_default_ttl``).
    default_ttl: int = 64
    #: Verify IPv4 header checksums on receive (RFC 791 §3.1). The header
    #: checksum is cheap and the kernel always fills it in, so this stays on.
    verify_header_checksum: bool = True
    #: Verify ICMP/UDP/TCP checksums on receive. Off only on links that
    #: guarantee integrity (a TUN with checksum offload hands over partial sums).
    verify_transport_checksum: bool = True
    #: Most ICMP errors sent per second (token bucket, as Linux ``icmp_ratelimit``).
    icmp_error_rate: float = 1000.0
    icmp_error_burst: int = 50
    #: Echo replies are sent for requests addressed to the stack (RFC 1122 §3.2.2.6).
    answer_echo: bool = True
    #: Software GRO (``core/gro.py``): on a link without receive offload, merge the
    #: consecutive in-order TCP segments of a flow read in one batch before TCP sees them.
    gro: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.default_ttl <= 255:
            raise ValueError(f"default_ttl must be in 1..255, got {self.default_ttl}")
        if self.icmp_error_rate <= 0 or self.icmp_error_burst < 1:
            raise ValueError("icmp_error_rate must be > 0 and icmp_error_burst >= 1")


@dataclass(frozen=True, slots=True)
class TcpConfig:
    """TCP settings. Times are seconds; sizes are bytes."""

    #: Minimum retransmission timeout; RFC 6298 §2.4 says 1 s, Linux uses 200 ms.
    min_rto: float = 0.2
    #: Maximum retransmission timeout (RFC 6298 §2.5 allows an upper bound >= 60 s).
    max_rto: float = 120.0
    #: Initial RTO before any RTT sample (RFC 6298 §2.1).
    initial_rto: float = 1.0
    #: SYN retransmissions before the connect fails (Linux ``tcp_syn_retries``).
    syn_retries: int = 6
    #: SYN-ACK retransmissions of a passive open (Linux ``tcp_synack_retries``).
    synack_retries: int = 5
    #: Data retransmissions before the connection is given up (Linux ``tcp_retries2``).
    data_retries: int = 15
    #: Maximum segment lifetime; TIME-WAIT lasts 2*MSL (RFC 9293 §3.4.2). Linux: 60 s total.
    msl: float = 30.0
    #: Per-connection buffers.
    send_buffer: int = 4 * 1024 * 1024
    receive_buffer: int = 4 * 1024 * 1024
    #: Upper bound on out-of-order bytes held per connection.
    out_of_order_limit: int = 4 * 1024 * 1024
    #: Upper bound on out-of-order segments (pieces after coalescing) held per connection,
    #: the SegmentSmack defence (CVE-2018-5390): Linux charges each queued skb at least
    #: about 1 KiB of truesize against the receive buffer, so 4 MiB holds about 4096.
    #: Past it the highest ranges are pruned (Linux ``tcp_prune_ofo_queue``).
    out_of_order_segments: int = 4096
    #: Delayed ACK timeout, at most 500 ms per RFC 1122 §4.2.3.2 (Linux: 40 ms min).
    delayed_ack_timeout: float = 0.04
    #: Nagle's algorithm (RFC 896, RFC 1122 §4.2.3.4); False means TCP_NODELAY.
    nagle: bool = True
    #: Keepalive (RFC 1122 §4.2.3.6): off by default, Linux timings when on.
    keepalive: bool = False
    keepalive_idle: float = 7200.0
    keepalive_interval: float = 75.0
    keepalive_probes: int = 9
    #: Options we offer in our SYN / SYN-ACK.
    window_scaling: bool = True
    timestamps: bool = True
    sack: bool = True
    #: Congestion control: "cubic" (default, RFC 9438) or "newreno" (RFC 5681/6582).
    congestion_control: str = "cubic"
    #: Tail loss probes (RFC 8985 §7): probe 2*SRTT after the last send instead of waiting
    #: for the RTO, so a lost tail is repaired by fast recovery. Needs SACK.
    tail_loss_probe: bool = True
    #: Leave slow start when the RTT starts to grow (HyStart++, RFC 9406 §4.2, delay
    #: increase only), instead of overflowing the bottleneck queue.
    hystart: bool = True
    #: Listener bounds: half-open connections per listener before SYN cookies.
    syn_queue_limit: int = 256
    #: Answer SYNs beyond ``syn_queue_limit`` with SYN cookies (RFC 4987 §3.6); False drops them.
    syn_cookies: bool = True
    #: How long a closed (orphaned) connection may sit in FIN-WAIT-2 (Linux ``tcp_fin_timeout``).
    fin_wait_2_timeout: float = 60.0
    #: Challenge ACKs per second for the whole stack (RFC 5961 §7, Linux
    #: ``tcp_challenge_ack_limit``), a backstop behind the per-connection limit below.
    challenge_ack_limit: int = 1000
    #: Per connection, at most one reply per this many seconds to segments that are out of
    #: window, acknowledge unsent data, fail PAWS, or draw a challenge ACK (Linux
    #: ``tcp_invalid_ratelimit``, 500 ms; RFC 5961 §7). 0 turns the limit off.
    invalid_ratelimit: float = 0.5
    #: Retransmissions (and zero-window probes) of an orphaned connection, closed by its
    #: application, before it is reset (Linux ``tcp_orphan_retries``; its 0 means 8).
    orphan_retries: int = 8
    #: RFC 5482 / RFC 9293 §3.8.3 user timeout: how long sent data may stay unacknowledged,
    #: or a zero window unopened, before the connection fails with TimeoutError (Linux
    #: ``TCP_USER_TIMEOUT``); 0 leaves it to ``data_retries``. Per connection it is set with
    #: ``setsockopt(IPPROTO_TCP, TCP_USER_TIMEOUT, ms)`` on the transport's socket.
    user_timeout: float = 0.0
    #: Most orphaned connections (closed by their application, still finishing) the stack
    #: keeps; past it a closing connection is reset instead (Linux ``tcp_max_orphans``).
    max_orphans: int = 16384
    #: Most connections in TIME-WAIT; past it a connection skips TIME-WAIT (Linux
    #: ``tcp_max_tw_buckets``, "time wait bucket table overflow"), so TIME-WAIT can never
    #: fill ``max_connections``.
    max_time_wait: int = 16384
    #: Stack-wide budget in bytes for data held in TCP buffers (receive, out-of-order and
    #: send), like Linux ``tcp_mem``'s pressure mark. Measured at most once a second of
    #: activity; over it, every out-of-order queue is purged, new out-of-order data is
    #: refused, receive windows stop growing and new SYNs are dropped, until the total
    #: is back under the budget (``send`` is still bounded only per connection).
    memory_limit: int = 1 << 30
    #: Most connections the stack keeps (established, orphaned and TIME-WAIT).
    max_connections: int = 65536

    def __post_init__(self) -> None:
        if not 0 < self.min_rto <= self.initial_rto <= self.max_rto:
            raise ValueError("need 0 < min_rto <= initial_rto <= max_rto")
        if self.congestion_control not in ("cubic", "newreno"):
            raise ValueError(
                f"congestion_control must be 'cubic' or 'newreno', got {self.congestion_control!r}"
            )
        for name in ("send_buffer", "receive_buffer", "out_of_order_limit"):
            if getattr(self, name) < 1024:
                raise ValueError(f"{name} must be at least 1024 bytes")
        if self.invalid_ratelimit < 0 or self.user_timeout < 0:
            raise ValueError("invalid_ratelimit and user_timeout must be >= 0")
        for name in ("orphan_retries", "max_orphans", "max_time_wait"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.memory_limit < 65536:
            raise ValueError(f"memory_limit must be at least 65536 bytes, got {self.memory_limit}")
        if self.out_of_order_segments < 1:
            raise ValueError(
                f"out_of_order_segments must be >= 1, got {self.out_of_order_segments}"
            )
        if not 0 < self.delayed_ack_timeout <= 0.5:
            raise ValueError("delayed_ack_timeout must be in (0, 0.5] s (RFC 1122 §4.2.3.2)")
        if self.msl <= 0 or self.fin_wait_2_timeout <= 0:
            raise ValueError("msl and fin_wait_2_timeout must be > 0")


@dataclass(frozen=True, slots=True)
class InterceptConfig:
    """Bounds of intercept mode (``Stack.intercept``): flows to addresses not our own.

    A SYN to an intercepted address waits (not answered) until the application
    accepts or rejects it; ``pending_timeout`` rejects it with RST if the
    application has not decided by then (a client's first SYN retransmission
    comes after 1 s, RFC 6298 §2.1, so the SYN is usually seen several times).
    """

    #: Most held SYNs (TCP flows waiting for the application); excess SYNs are dropped.
    max_pending_tcp: int = 1024
    #: Seconds a held SYN may wait for accept/reject before it is rejected (RST).
    pending_timeout: float = 5.0
    #: Most UDP flows, one per (source, destination); datagrams of further ones are dropped.
    max_udp_flows: int = 4096
    #: Seconds without a datagram either way after which a UDP flow ends.
    udp_idle_timeout: float = 60.0
    #: Datagrams queued per UDP flow for the application; excess datagrams are dropped.
    udp_queue_limit: int = 128

    def __post_init__(self) -> None:
        for name in ("max_pending_tcp", "max_udp_flows", "udp_queue_limit"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.pending_timeout <= 0 or self.udp_idle_timeout <= 0:
            raise ValueError("pending_timeout and udp_idle_timeout must be > 0 seconds")


@dataclass(frozen=True, slots=True)
class ResolverConfig:
    """The stub resolver's settings. Times are seconds."""

    #: Wait for an answer from one server before trying the next (resolv.conf(5)
    #: ``timeout``, default 5 s; glibc ``RES_TIMEOUT``).
    timeout: float = 5.0
    #: Rounds over the whole server list (resolv.conf(5) ``attempts``, default 2).
    attempts: int = 2
    #: Answers kept in the cache (0 turns the cache off).
    cache_size: int = 1024
    #: Longest a positive answer is cached, whatever its TTL says (one day).
    max_ttl: float = 86400.0
    #: Longest a negative answer is cached: RFC 2308 §5 recommends one to three hours.
    max_negative_ttl: float = 10800.0
    #: Lookups in progress at once; more raise ``OSError(EAGAIN)``-style failures.
    max_lookups: int = 1024

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise ValueError(f"timeout must be > 0, got {self.timeout}")
        if not 1 <= self.attempts <= 5:
            raise ValueError(f"attempts must be in 1..5 (resolv.conf's cap), got {self.attempts}")
        if self.cache_size < 0 or self.max_ttl < 0 or self.max_negative_ttl < 0:
            raise ValueError("cache_size, max_ttl and max_negative_ttl must be >= 0")
        if self.max_lookups < 1:
            raise ValueError("max_lookups must be >= 1")


@dataclass(frozen=True, slots=True)
class StackConfig:
    """Settings for a whole stack."""

    ip: IpConfig = field(default_factory=IpConfig)
    tcp: TcpConfig = field(default_factory=TcpConfig)
    intercept: InterceptConfig = field(default_factory=InterceptConfig)
    resolver: ResolverConfig = field(default_factory=ResolverConfig)
    #: Packets read from the link per wake-up before yielding to the loop.
    receive_batch: int = 256
    #: Ephemeral port range (RFC 6056; Linux ``ip_local_port_range``).
    ephemeral_ports: tuple[int, int] = (32768, 60999)

    def __post_init__(self) -> None:
        low, high = self.ephemeral_ports
        if not 1024 <= low <= high <= 65535:
            raise ValueError(
                "ephemeral_ports must satisfy 1024 <= low <= high <= 65535, "
                f"got {self.ephemeral_ports}"
            )
        if self.receive_batch < 1:
            raise ValueError("receive_batch must be >= 1")
