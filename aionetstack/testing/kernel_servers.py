"""Kernel-side servers and namespace routing for intercept tests and benchmarks over a TUN.

Call these only inside a network namespace made for the purpose
(:func:`aionetstack.testing.netns.network_namespace`). The routing
(documented in docs/architecture.md, "Intercept"):

* ``198.19.0.0/16 dev TUN`` in the main table, and a rule sending unmarked
  packets to 198.19.0.0/16 to it: clients' flows go into the TUN;
* ``local 198.19.0.0/16 dev lo`` in the local table (AnyIP), which only
  packets with fwmark 1 consult first: the relay's upstream sockets
  (``SO_MARK`` 1) reach kernel servers bound to 0.0.0.0 under the very
  address the client dialled instead of looping back into the TUN;
  ``net.ipv4.tcp_fwmark_accept=1`` marks the servers' accepted sockets too,
  so their answers stay local, and ``net.ipv4.fwmark_reflect=1`` the
  kernel's RSTs and ICMP errors to marked packets (a closed port refuses at
  once). Packets from ``SOCKS_EXTERNAL`` (198.18.9.1 on ``lo``: a SOCKS
  server's outgoing address) are local the same way.
  (A local route in a table other than ``local`` does not serve output
  routing, hence the rule order: marked -> local; unmarked to 198.19/16 ->
  main; everything else -> local.)

Servers are blocking sockets served by threads (DESIGN.md §6: the kernel side
must not be the bottleneck), created in the test's thread so that they live
in its namespace; each records the local address its clients reached.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import subprocess
import threading

__all__ = [
    "INTERCEPTED",
    "KERNEL",
    "MARK",
    "SOCKS_EXTERNAL",
    "STACK",
    "TUN",
    "KernelServers",
    "route_intercepted",
]

#: struct in_pktinfo (ip(7)): interface index, local address, destination address.
_IN_PKTINFO = struct.Struct("=i4s4s")
#: ip(7) IP_PKTINFO (``socket.IP_PKTINFO`` only from Python 3.12).
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)

TUN = "aionsi0"
KERNEL = "198.18.0.1"
STACK = "198.18.0.2"
INTERCEPTED = "198.19.0.0/16"
MARK = 1
#: A SOCKS server's outgoing address (on lo): its connections stay local too.
SOCKS_EXTERNAL = "198.18.9.1"


def route_intercepted(tun: str | None = TUN) -> None:
    """The routing described in the module docstring (in the current namespace).

    ``tun=None`` leaves out the route into the TUN (for a proxy that adds it).
    """
    commands = [["ip", "route", "replace", INTERCEPTED, "dev", tun]] if tun else []
    for command in (
        *commands,
        ["ip", "addr", "add", f"{SOCKS_EXTERNAL}/32", "dev", "lo"],
        ["ip", "route", "replace", "local", INTERCEPTED, "dev", "lo", "table", "local"],
        ["ip", "rule", "add", "pref", "10", "fwmark", str(MARK), "lookup", "local"],
        ["ip", "rule", "add", "pref", "11", "from", SOCKS_EXTERNAL, "lookup", "local"],
        ["ip", "rule", "add", "pref", "20", "to", INTERCEPTED, "lookup", "main"],
        ["ip", "rule", "add", "pref", "30", "lookup", "local"],
        ["ip", "rule", "del", "pref", "0"],
        ["sysctl", "-qw", "net.ipv4.tcp_fwmark_accept=1"],
        ["sysctl", "-qw", "net.ipv4.fwmark_reflect=1"],
    ):
        subprocess.run(command, check=True, capture_output=True)


class KernelServers:
    """A TCP echo server, an HTTP-ish server and a UDP echo server on 0.0.0.0."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.tcp_seen: list[tuple[str, int]] = []
        #: The (address, port) each UDP datagram was sent to.
        self.udp_seen: list[tuple[str, int]] = []
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._closing = threading.Event()
        self.echo_port = self._listen(self._echo)
        self.http_port = self._listen(self._http)
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.setsockopt(socket.SOL_SOCKET, 36, MARK)  # SO_MARK: answers stay local
        udp.bind(("0.0.0.0", 0))
        self._sockets.append(udp)
        self.udp_port = udp.getsockname()[1]
        self._start(self._udp_echo, udp)

    def _start(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    def _listen(self, serve: object) -> int:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("0.0.0.0", 0))
        listener.listen(1024)
        self._sockets.append(listener)
        self._start(self._accept_loop, listener, serve)
        return int(listener.getsockname()[1])

    def _accept_loop(self, listener: socket.socket, serve: object) -> None:
        while not self._closing.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            self.tcp_seen.append(connection.getsockname())
            threading.Thread(target=serve, args=(connection,), daemon=True).start()  # type: ignore[arg-type]

    @staticmethod
    def _echo(connection: socket.socket) -> None:
        with connection, contextlib.suppress(OSError):
            while data := connection.recv(262144):
                connection.sendall(data)

    def _http(self, connection: socket.socket) -> None:
        with connection, contextlib.suppress(OSError):
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = connection.recv(65536)
                if not chunk:
                    return
                request += chunk
            host, port = connection.getsockname()
            head = (
                f"HTTP/1.1 200 OK\r\nContent-Length: {len(self.body)}\r\n"
                f"X-Reached: {host}:{port}\r\nConnection: close\r\n\r\n"
            ).encode()
            connection.sendall(head + self.body)

    def _udp_echo(self, sock: socket.socket) -> None:
        """Echo each datagram from the address it was sent to (IP_PKTINFO), as a UDP
        server on a host with several addresses must, so that NATs and SOCKS relays
        match the answer to the request."""
        sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        while not self._closing.is_set():
            try:
                data, ancillary, _flags, peer = sock.recvmsg(65535, 256)
            except OSError:
                return
            if peer is None:  # shut down
                return
            reached = None
            for level, kind, value in ancillary:
                if level == socket.IPPROTO_IP and kind == IP_PKTINFO:
                    _index, _spec, reached = _IN_PKTINFO.unpack_from(value)
            if reached is None:
                continue
            self.udp_seen.append((socket.inet_ntoa(reached), self.udp_port))
            reply = [(socket.IPPROTO_IP, IP_PKTINFO, _IN_PKTINFO.pack(0, reached, bytes(4)))]
            with contextlib.suppress(OSError):
                sock.sendmsg([data], reply, 0, peer)

    def close(self) -> None:
        self._closing.set()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:
            thread.join(5)
