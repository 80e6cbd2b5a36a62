"""One command for the side-by-side benchmarks (issue 11, DESIGN.md §6).

``sudo python benchmarks/run.py`` (``--quick`` for a smoke test: 1 run of 0.5 s)

Inside a network namespace this script creates (and deletes), one kernel-side
client (``client.py``: blocking sockets, one thread per connection, pinned to
CPU 0) talks to servers pinned to CPU 1, all started once and left idle while
another is measured:

* ``asyncio``: ``server.py kernel``: asyncio over the kernel's sockets on 127.0.0.1;
* ``stack``: ``server.py stack``: aionetstack on the default ``TunLink`` (offloads
  negotiated), kernel side 198.18.0.1, stack 198.18.0.2;
* ``headroom``: ``blocking_server.py`` on 127.0.0.2: the same client against a
  server of its own kind (blocking sockets, a thread per connection), so the
  table shows how far the client itself could go;
* ``stack, no offload``: ``TunLink(offload=False)``, MTU 1500 (198.18.1.2);
* ``asyncio, allocator settled`` / ``stack, allocator settled`` (127.0.0.4, 198.18.3.2):
  the same servers after freeing one 4 MiB block (``server.py --settle-allocator``),
  so that glibc's heap trimming does not decide the upload figures (docs/performance.md);
* ``stack, allocator settled, MTU 65535`` (198.18.4.2): that stack with its TUN at
  loopback's MTU, against the settled asyncio, for upload (once per ``--congestion``);
* ``asyncio, 2 workers`` / ``stack, 2 workers``: two processes serving one port
  (``SO_REUSEPORT`` on 127.0.0.3; a multi-queue TUN on 198.18.2.2), pinned to CPU 1
  and CPU 0 (the client's CPU: this machine has two).

Runs alternate between backends (run 1 of each, then run 2 of each ...); each
figure is the median of ``--runs`` with min-max, ratios are stack / asyncio.
The server's user and system CPU per unit of work (a transaction, a connection
or a 64 KiB of payload) comes from its ``getrusage`` around each run. The main
table runs once per ``--congestion`` (the kernel client's TCP_CONGESTION).

A separate "asyncio at both ends" table drives the same servers with
``peer.py``, an asyncio client, which is itself the limit (labelled as such).
Also measured: idle memory per connection, stack to stack over a memory link.
Writes ``results/bench.json`` and ``results/bench.txt`` (not with ``--only``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from _common import RESULTS, machine  # noqa: E402

from aionetstack.testing.netns import network_namespace  # noqa: E402

SERVER_CPU, CLIENT_CPU = 1, 0
SEGMENT = 65536  # bulk CPU figures are per 64 KiB of payload


@dataclass
class Backend:
    """How to start one kind of server: the command lines of its processes."""

    name: str
    host: str
    commands: list[list[str]]
    env: dict[str, str] = field(default_factory=dict)
    processes: list[subprocess.Popen[str]] = field(default_factory=list)

    def start(self) -> None:
        for command in self.commands:
            process = subprocess.Popen(
                [sys.executable, *command], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=self.log(), text=True, env={**os.environ, **self.env},
            )  # fmt: skip
            self.processes.append(process)
            assert process.stdout is not None
            line = process.stdout.readline()
            if line.strip() != "ready":
                self.stop()
                raise RuntimeError(f"server {self.name} did not start: {line!r}")

    @staticmethod
    def log() -> Any:
        """The servers' stderr (asyncio logs every reset that ends a download run)."""
        RESULTS.mkdir(exist_ok=True)
        return (RESULTS / "servers.log").open("a")

    def ask(self, command: str) -> list[str]:
        answers = []
        for process in self.processes:
            assert process.stdin is not None and process.stdout is not None
            process.stdin.write(command + "\n")
            process.stdin.flush()
            answers.append(process.stdout.readline())
        return answers

    def cpu(self) -> tuple[float, float]:
        """User and system CPU seconds of all its processes so far."""
        answers = [json.loads(line) for line in self.ask("cpu")]
        return sum(a["user"] for a in answers), sum(a["sys"] for a in answers)

    def rss_kib(self) -> int:
        return sum(int(line) for line in self.ask("rss"))

    def stop(self) -> None:
        for process in self.processes:
            if process.stdin is not None:
                process.stdin.close()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()


def server(*args: str) -> list[str]:
    return [str(HERE / "server.py"), *args]


def make_backends() -> dict[str, Backend]:
    cpu = ["--cpu", str(SERVER_CPU)]
    two = [["--workers", "2", "--worker", str(n), "--cpu", str((SERVER_CPU + n) % 2)]
           for n in range(2)]  # fmt: skip
    return {
        "asyncio": Backend("asyncio", "127.0.0.1", [server("kernel", "127.0.0.1", *cpu)]),
        "stack": Backend("stack", "198.18.0.2", [server("stack", "198.18.0.2", *cpu)]),
        "headroom": Backend(
            "headroom", "127.0.0.2", [[str(HERE / "blocking_server.py"), "127.0.0.2", *cpu]]
        ),
        "stack, no offload": Backend(
            "stack, no offload",
            "198.18.1.2",
            [
                server(
                    "stack",
                    "198.18.1.2",
                    "--tun",
                    "aionsb1",
                    "--no-offload",
                    "--mtu",
                    "1500",
                    *cpu,
                )
            ],
        ),
        "asyncio, allocator settled": Backend(
            "asyncio, allocator settled",
            "127.0.0.4",
            [server("kernel", "127.0.0.4", "--settle-allocator", *cpu)],
        ),
        "stack, allocator settled": Backend(
            "stack, allocator settled",
            "198.18.3.2",
            [server("stack", "198.18.3.2", "--tun", "aionsb3", "--settle-allocator", *cpu)],
        ),
        "stack, allocator settled, MTU 65535": Backend(
            "stack, allocator settled, MTU 65535",
            "198.18.4.2",
            [
                server(
                    "stack",
                    "198.18.4.2",
                    "--tun",
                    "aionsb4",
                    "--settle-allocator",
                    "--mtu",
                    "65535",
                    *cpu,
                )
            ],
        ),
        "asyncio, 2 workers": Backend(
            "asyncio, 2 workers", "127.0.0.3", [server("kernel", "127.0.0.3", *w) for w in two]
        ),
        "stack, 2 workers": Backend(
            "stack, 2 workers",
            "198.18.2.2",
            [server("stack", "198.18.2.2", "--tun", "aionsb2", *w) for w in two],
        ),
    }


@dataclass(frozen=True)
class Scenario:
    label: str
    mode: str
    connections: int
    backends: tuple[str, ...]
    unit: str  # "Gbit/s" or "/s"


MAIN = ("asyncio", "stack", "headroom")
SCENARIOS = [
    Scenario("upload, 1 conn", "upload", 1, MAIN, "Gbit/s"),
    Scenario("upload, 10 conns", "upload", 10, MAIN, "Gbit/s"),
    Scenario("download, 1 conn", "download", 1, MAIN, "Gbit/s"),
    Scenario("download, 10 conns", "download", 10, MAIN, "Gbit/s"),
    Scenario("1-byte request/response, 1 conn", "rr", 1, MAIN, "/s"),
    Scenario("1-byte request/response, 10 conns", "rr", 10, MAIN, "/s"),
    Scenario("connect+request+close, 10 threads", "connrate", 10, MAIN, "/s"),
]
EXTRA = [  # run once, with the system's congestion control
    Scenario("no offload, MTU 1500: upload", "upload", 1, ("stack, no offload",), "Gbit/s"),
    Scenario("no offload, MTU 1500: download", "download", 1, ("stack, no offload",), "Gbit/s"),
]
#: Both servers with glibc's allocator settled first (server.py ``settle_allocator``).
SETTLED_PAIR = ("asyncio, allocator settled", "stack, allocator settled")
SETTLED = [
    Scenario("allocator settled: upload, 1 conn", "upload", 1, SETTLED_PAIR, "Gbit/s"),
    Scenario("allocator settled: upload, 10 conns", "upload", 10, SETTLED_PAIR, "Gbit/s"),
]
#: The settled pair again, the stack's TUN at loopback's MTU (65536 there; 65535 is an IP
#: packet's limit): the kernel's TCP then sends whole-MSS super-packets and the stack, as
#: loopback's receiver does, owes an ACK for every second one (RFC 5681 §4.2) instead of
#: one for each 44-segment super-packet of MTU 1500. Run for each congestion control.
LOOPBACK_MTU_PAIR = ("asyncio, allocator settled", "stack, allocator settled, MTU 65535")
LOOPBACK_MTU = [
    Scenario("settled, MTU 65535: upload, 1 conn", "upload", 1, LOOPBACK_MTU_PAIR, "Gbit/s"),
    Scenario("settled, MTU 65535: upload, 10 conns", "upload", 10, LOOPBACK_MTU_PAIR,
             "Gbit/s"),
]  # fmt: skip
#: One and two worker processes, alternating (the system's congestion control).
FOUR = ("asyncio", "asyncio, 2 workers", "stack", "stack, 2 workers")
WORKERS = [
    Scenario("workers: 1-byte request/response, 10 conns", "rr", 10, FOUR, "/s"),
    Scenario("workers: connect+request+close, 10 threads", "connrate", 10, FOUR, "/s"),
    Scenario("workers: upload, 10 conns", "upload", 10, FOUR, "Gbit/s"),
    Scenario("workers: download, 10 conns", "download", 10, FOUR, "Gbit/s"),
]
#: "asyncio at both ends": peer.py (an asyncio client) against the same servers.
PEER = [
    Scenario("asyncio client: upload, 1 conn", "upload", 1, ("asyncio", "stack"), "Gbit/s"),
    Scenario("asyncio client: download, 1 conn", "download", 1, ("asyncio", "stack"), "Gbit/s"),
    Scenario("asyncio client: 1-byte echo, 1 conn", "rr", 1, ("asyncio", "stack"), "/s"),
    Scenario("asyncio client: connect+request+close, 10", "connrate", 10,
             ("asyncio", "stack"), "/s"),
]  # fmt: skip


def run_client(
    program: str,
    mode: str,
    host: str,
    seconds: float,
    connections: int,
    *,
    congestion: str | None,
) -> dict[str, float]:
    env = {**os.environ, "BENCH_CPU": str(CLIENT_CPU)}
    env.pop("BENCH_CC", None)
    if congestion:
        env["BENCH_CC"] = congestion
    result = subprocess.run(
        [sys.executable, str(HERE / program), mode, host, str(seconds), str(connections)],
        capture_output=True, text=True, timeout=seconds + 180, env=env, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"{program} {mode} {host} failed: {result.stderr.strip()[-800:]}")
    answer: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


def work_units(scenario: Scenario, answer: dict[str, float], seconds: float) -> float:
    """How many units of work a run did: 64 KiB segments, transactions or connections."""
    if "total" in answer:
        total = answer["total"]
    elif scenario.unit == "Gbit/s":
        total = answer["gbit_s"] * 1e9 / 8 * seconds
    else:
        total = answer["per_s"] * seconds
    return total / SEGMENT if scenario.unit == "Gbit/s" else total


def measure(
    scenarios: list[Scenario],
    backends: dict[str, Backend],
    runs: int,
    seconds: float,
    *,
    congestion: str | None,
    program: str = "client.py",
) -> dict[str, Any]:
    """Every scenario, runs alternating between its backends."""
    results: dict[str, Any] = {}
    for scenario in scenarios:
        entry: dict[str, Any] = {"unit": scenario.unit, "backends": {}}
        for number in range(runs):
            for name in scenario.backends:
                backend = backends[name]
                progress(f"{scenario.label} [{congestion or 'default'}]: {name}, "
                         f"run {number + 1}/{runs}")  # fmt: skip
                user0, sys0 = backend.cpu()
                answer = run_client(program, scenario.mode, backend.host, seconds,
                                    scenario.connections, congestion=congestion)  # fmt: skip
                user1, sys1 = backend.cpu()
                value = answer["gbit_s"] if scenario.unit == "Gbit/s" else answer["per_s"]
                units = max(work_units(scenario, answer, seconds), 1.0)
                record = entry["backends"].setdefault(
                    name, {"values": [], "user_us": [], "sys_us": [], "client": []}
                )
                record["values"].append(value)
                record["user_us"].append((user1 - user0) / units * 1e6)
                record["sys_us"].append((sys1 - sys0) / units * 1e6)
                record["client"].append(answer)
        results[scenario.label] = entry
    return results


def idle_memory(runs: int, connections: int) -> dict[str, Any]:
    """KiB of server RSS per idle established connection, a fresh server each time."""
    results: dict[str, Any] = {"unit": "KiB", "backends": {}}
    for number in range(runs):
        for name in ("asyncio", "stack"):
            progress(f"{connections} idle connections: {name}, run {number + 1}")
            backend = make_backends()[name]
            backend.start()
            try:
                before = backend.rss_kib()
                client = subprocess.Popen(
                    [sys.executable, str(HERE / "client.py"), "idle", backend.host, "0",
                     str(connections)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                    env={**os.environ, "BENCH_CPU": str(CLIENT_CPU)},
                )  # fmt: skip
                assert client.stdout is not None and client.stdin is not None
                opened = json.loads(client.stdout.readline())["opened"]
                time.sleep(0.5)  # the last handshakes' handlers start (a measurement pause)
                after = backend.rss_kib()
                client.stdin.close()
                client.wait(timeout=120)
            finally:
                backend.stop()
            record = results["backends"].setdefault(name, {"values": []})
            record["values"].append((after - before) / opened)
    return results


def memory_link(runs: int, seconds: float) -> dict[str, Any]:
    """Stack to stack over a memory link in this process (pinned to the server CPU)."""
    from memory_link import bulk

    os.sched_setaffinity(0, {SERVER_CPU})
    values = []
    for number in range(runs):
        progress(f"memory link bulk, run {number + 1}")
        values.append(asyncio.run(bulk(seconds)))
    return {"unit": "Gbit/s", "backends": {"stack": {"values": values}}}


def progress(text: str) -> None:
    print(f"\r\033[K{text}", end="", file=sys.stderr, flush=True)


def median(values: list[float]) -> float:
    return statistics.median(values)


def cell(values: list[float]) -> str:
    middle = median(values)
    text = f"{middle:.3g}" if middle < 100 else f"{middle:,.0f}"
    if len(values) > 1:
        low, high = min(values), max(values)
        text += f" ({low:.3g}-{high:.3g})" if high < 100 else f" ({low:,.0f}-{high:,.0f})"
    return text


def table(title: str, results: dict[str, Any], columns: list[str]) -> str:
    """A markdown table: medians (min-max), the ratio, CPU per unit of work."""
    lines = [f"### {title}", ""]
    head = ["scenario", *columns, "ratio", "µs user+sys per unit (stack / asyncio)"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for label, entry in results.items():
        backends = entry["backends"]
        row = [f"{label} [{entry['unit']}]"]
        for column in columns:
            matching = [n for n in backends if n == column or n.startswith(column + ",")]
            row.append(cell(backends[matching[0]]["values"]) if matching else "")
        stack = next((n for n in backends if n.startswith("stack")), None)
        base = next((n for n in backends if n.startswith("asyncio")), None)
        ratio = ""
        if stack and base:
            ratio = f"{median(backends[stack]['values']) / median(backends[base]['values']):.2f}x"
        row.append(ratio)
        costs = []
        for name in (stack, base):
            record = backends.get(name) if name else None
            if record and record.get("user_us"):
                costs.append(f"{median(record['user_us']):.0f}+{median(record['sys_us']):.0f}")
        unit = "per 64 KiB" if entry["unit"] == "Gbit/s" else "per transaction"
        row.append(" / ".join(costs) + (f" {unit}" if costs else ""))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def workers_table(title: str, results: dict[str, Any]) -> str:
    """One and two workers of each kind: medians, stack/asyncio at two, and the scaling."""
    lines = [f"### {title}", ""]
    head = ["scenario", *FOUR, "stack/asyncio, 2 workers", "2 workers / 1: asyncio, stack"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, entry in results.items():
        backends = entry["backends"]
        medians = {name: median(backends[name]["values"]) for name in FOUR if name in backends}
        row = [f"{label} [{entry['unit']}]"]
        row += [cell(backends[name]["values"]) if name in backends else "" for name in FOUR]
        if len(medians) == len(FOUR):
            row.append(f"{medians['stack, 2 workers'] / medians['asyncio, 2 workers']:.2f}x")
            row.append(
                f"{medians['asyncio, 2 workers'] / medians['asyncio']:.2f}x, "
                f"{medians['stack, 2 workers'] / medians['stack']:.2f}x"
            )
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def machine_state() -> dict[str, Any]:
    with open("/proc/loadavg") as handle:
        load = handle.read().split()[:3]
    busy = Path("/work/notes/BENCH_RUNNING").exists()
    return {"loadavg": load, "bench_running_flag": busy, "time": time.strftime("%FT%TZ",
            time.gmtime())}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description="aionetstack vs asyncio over the kernel")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--idle", type=int, default=10000, help="idle connections (0 = skip)")
    parser.add_argument(
        "--congestion",
        default="bbr,cubic",
        help="the kernel client's congestion controls, comma-separated",
    )
    parser.add_argument("--quick", action="store_true", help="1 run of 0.5 s, 200 idle conns")
    parser.add_argument("--only", help="run only the scenarios whose label contains this text")
    args = parser.parse_args()  # fmt: skip
    if args.quick:
        args.runs, args.seconds, args.idle = 1, 0.5, 200
    if os.geteuid() != 0:
        print("run.py: needs root for the network namespace and the TUN", file=sys.stderr)
        return 2
    congestions = [c or None for c in args.congestion.split(",")]

    def chosen(scenarios: list[Scenario]) -> list[Scenario]:
        return [s for s in scenarios if args.only is None or args.only in s.label]

    report: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(), "state_before": machine_state(),
        "runs": args.runs, "seconds": args.seconds, "tables": {},
    }  # fmt: skip
    texts = []
    with network_namespace("aionsbench"):
        # The client reuses TIME-WAIT ports for every destination, not only loopback.
        subprocess.run(["sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1"], check=True)
        subprocess.run(["sysctl", "-qw", "net.ipv4.ip_local_port_range=20000 60999"],
                       check=True)  # fmt: skip
        backends = make_backends()
        every = SCENARIOS + EXTRA + SETTLED + LOOPBACK_MTU + WORKERS + PEER
        wanted = {n for s in chosen(every) for n in s.backends}
        try:
            for name in backends:
                if name in wanted:
                    progress(f"starting {name}")
                    backends[name].start()

            def publish(title: str, results: dict[str, Any], columns: list[str] | None) -> None:
                """Keep a table of ``results`` (none measured: no table); ``columns`` None:
                the workers' table."""
                if results:
                    report["tables"][title] = results
                    texts.append(workers_table(title, results) if columns is None
                                 else table(title, results, columns))  # fmt: skip

            def default(scenarios: list[Scenario], **options: Any) -> dict[str, Any]:
                """Measure with the system's congestion control."""
                return measure(chosen(scenarios), backends, args.runs, args.seconds,
                               congestion=None, **options)  # fmt: skip

            for congestion in congestions:
                publish(
                    f"Blocking-socket client, {congestion or 'system default'} congestion",
                    measure(chosen(SCENARIOS), backends, args.runs, args.seconds,
                            congestion=congestion),
                    ["asyncio", "stack", "headroom"],
                )  # fmt: skip
            publish("A TUN without offload, MTU 1500 (system default congestion)",
                    default(EXTRA), ["asyncio", "stack"])  # fmt: skip
            publish(
                "Both servers with glibc's allocator settled: one 4 MiB block freed at start"
                " (system default congestion)",
                default(SETTLED), list(SETTLED_PAIR),
            )  # fmt: skip
            for congestion in congestions:
                publish(
                    f"Both allocators settled, the stack's TUN at MTU 65535 (loopback's is "
                    f"65536), {congestion or 'system default'} congestion",
                    measure(chosen(LOOPBACK_MTU), backends, args.runs, args.seconds,
                            congestion=congestion),
                    list(LOOPBACK_MTU_PAIR),
                )  # fmt: skip
            publish(
                "One and two worker processes (system default congestion; worker 2 "
                "shares CPU 0 with the client)",
                default(WORKERS), None,
            )  # fmt: skip
            publish("asyncio at both ends (peer.py: the asyncio client is the limit)",
                    default(PEER, program="peer.py"), ["asyncio", "stack"])  # fmt: skip
        finally:
            for backend in backends.values():
                backend.stop()
        other: dict[str, Any] = {}
        if args.idle and (args.only is None or "idle" in args.only):
            other[f"memory per idle connection ({args.idle})"] = idle_memory(
                min(args.runs, 3), args.idle)  # fmt: skip
    if args.only is None or "memory link" in args.only:
        other["memory link, stack to stack, bulk"] = memory_link(args.runs, args.seconds)
    if other:
        report["tables"]["Other"] = other
        texts.append(table("Other", other, ["asyncio", "stack"]))
    report["state_after"] = machine_state()
    progress("")
    text = "\n\n".join(texts)
    print(text)
    if args.only is None and not args.quick:  # partial runs do not replace the published ones
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
        (RESULTS / "bench.txt").write_text(
            f"command: {report['command']}\nmachine: {report['machine']}\n"
            f"before: {report['state_before']}\nafter: {report['state_after']}\n\n{text}\n"
        )
        print(f"\nwritten {RESULTS / 'bench.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
