"""Where a benchmark server's time goes: a sampling profile and Python calls per unit.

``sudo python benchmarks/profile_server.py MODE CONNECTIONS [--seconds 3] [--backend stack]``

In a namespace of its own, starts ``server.py`` (pinned to CPU 1) under
``py-spy record --native`` (sampling, idle samples dropped) and the
blocking client (``client.py``, CPU 0) for MODE (upload, download, rr, connrate),
then once more under cProfile for the number of Python calls per unit of work.
Prints the functions with the most samples (self and inclusive), the busy samples
split into asyncio and the handler, the device's system calls and the stack (the
share a stack that cost nothing would save), the server's user and system CPU per
unit, and calls per unit.
"""

from __future__ import annotations

import argparse
import collections
import linecache
import os
import pstats
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from _common import HOSTS, bench_server, run_client  # noqa: E402

from aionetstack.testing.netns import network_namespace  # noqa: E402

#: More server.py arguments (``--no-offload``).
EXTRA: list[str] = []


def units(mode: str, answer: dict[str, float]) -> float:
    return answer["total"] / 65536 if mode in ("upload", "download") else answer["total"]


def run(mode: str, connections: int, seconds: float, backend: str, *, spy: list[str] | None,
        env: dict[str, str]) -> tuple[dict[str, float], dict[str, float]]:  # fmt: skip
    """One server and one client run (``spy``: py-spy attached meanwhile); answer and CPU."""
    host = HOSTS[backend]
    sampler = None
    with bench_server(backend, host, *EXTRA, env=env) as server:
        try:
            if spy is not None:
                sampler = subprocess.Popen(
                    [*spy, "--pid", str(server.process.pid), "--duration", str(int(seconds))],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
                time.sleep(0.3)  # attached before the client starts
            before = server.ask("cpu")
            answer = run_client(mode, host, seconds, connections, {"BENCH_CPU": "0"})
            after = server.ask("cpu")
        finally:
            if sampler is not None:
                sampler.wait(timeout=seconds + 60)
    cpu = {"user": after["user"] - before["user"], "sys": after["sys"] - before["sys"]}
    return answer, cpu


def top_of_profile(collapsed: Path, count: int) -> str:
    """Functions by samples: self (the leaf frame) and inclusive (anywhere in the stack)."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if not stack:
            continue
        weight = int(samples)
        total += weight
        frames = stack.split(";")
        own[frames[-1]] += weight
        for frame in set(frames):
            inclusive[frame] += weight
    lines = [f"{total} samples", "", "self %  function"]
    lines += [f"{100 * n / total:5.1f}  {name}" for name, n in own.most_common(count)]
    lines += ["", "incl %  function"]
    lines += [f"{100 * n / total:5.1f}  {name}" for name, n in inclusive.most_common(count)]
    return "\n".join(lines)


#: Source text of a leaf line that waits for the next event (its samples are idle time).
_WAITING = ("self._selector.poll(", "self._epoll.poll(")
#: Source text of a leaf line in the stack that is one system call on the device.
_DEVICE_CALLS = ("readinto(", "read(fd, ", "write_packet(", "os.writev(", "os.write(")
PARTS = ("asyncio and the handler", "device system calls", "the stack")


#: Native functions (py-spy ``--native``) that are one system call on the device.
_DEVICE_FUNCTIONS = ("read_packet", "write_packet")
#: A native frame whose location names one of these is the stack's compiled code (mypyc's
#: shared library, or one of the package's C modules).
_STACK_NATIVE = ("aionetstack",)


def part_of_frame(frame: str, source_root: Path) -> str | None:
    """The part of the server a Python leaf frame belongs to (None: waiting for events).

    ``frame`` is py-spy's ``function (path:line)``: the line's text decides the device
    calls and the wait, so the split survives edits that move lines.
    """
    location = frame[frame.rindex("(") + 1 : -1]
    path, _, number = location.rpartition(":")
    if "aionetstack/" in path:
        text = linecache.getline(str(source_root / path[path.index("aionetstack/") :]), int(number))
        return PARTS[1] if any(token in text for token in _DEVICE_CALLS) else PARTS[2]
    # py-spy names a module by its path below the directory that holds it
    for directory in (sysconfig.get_paths()["stdlib"], str(HERE)):
        text = linecache.getline(os.path.join(directory, path), int(number))
        if text:
            break
    return None if any(token in text for token in _WAITING) else PARTS[0]


_UNKNOWN = "unknown"


def part_of_native_frame(frame: str) -> str:
    """A native frame's part: the device's system calls, the stack's compiled code, or
    unknown (CPython or libc: the caller decides)."""
    name, _, location = frame.partition(" (")
    if any(token in location for token in _STACK_NATIVE):
        return PARTS[1] if name in _DEVICE_FUNCTIONS else PARTS[2]
    return _UNKNOWN


def part_of_stack(frames: list[str], source_root: Path) -> str | None:
    """The part a sample belongs to: its innermost frame that says (py-spy ``--native``
    interleaves native frames: CPython's and libc's say nothing, mypyc's compiled code and
    the package's C modules are the stack's, a Python frame is decided by its line)."""
    for frame in reversed(frames):
        location = frame[frame.rfind("(") + 1 : -1]
        path, _, number = location.rpartition(":")
        if path.endswith(".py") and number.isdigit():
            return part_of_frame(frame, source_root)
        part = part_of_native_frame(frame)
        if part != _UNKNOWN:
            return part
    return PARTS[0]


def parts_of_profile(collapsed: Path, source_root: Path) -> dict[str, float]:
    """Each part's share of the busy samples (the wait for events left out)."""
    weights: collections.Counter[str] = collections.Counter()
    for line in collapsed.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if stack:
            part = part_of_stack(stack.split(";"), source_root)
            if part is not None:
                weights[part] += int(samples)
    busy = sum(weights.values()) or 1
    return {part: weights[part] / busy for part in PARTS}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["upload", "download", "rr", "connrate"])
    parser.add_argument("connections", type=int)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--backend", choices=sorted(HOSTS), default="stack")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--calls-only", action="store_true", help="only the cProfile run")
    parser.add_argument("--no-offload", action="store_true", help="TunLink(offload=False)")
    parser.add_argument("--settle-allocator", action="store_true",
                        help="the server frees one 4 MiB block first (server.py)")  # fmt: skip
    args = parser.parse_args()
    if args.no_offload:
        EXTRA.append("--no-offload")
    if args.settle_allocator:
        EXTRA.append("--settle-allocator")
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    with tempfile.TemporaryDirectory() as scratch, network_namespace("aionsprof"):
        subprocess.run(["sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1"], check=True)
        collapsed = Path(scratch) / "profile.txt"
        # Native frames too: the compiled modules' time is theirs, not their caller's.
        sampler: list[str] | None = [spy, "record", "--native", "--format", "raw", "-r", "400",
                                     "-o", str(collapsed)]  # fmt: skip
        if args.calls_only:
            sampler = None
        answer, cpu = run(
            args.mode, args.connections, args.seconds, args.backend, spy=sampler, env={}
        )
        done = units(args.mode, answer)
        unit = "64 KiB" if args.mode in ("upload", "download") else "transaction"
        print(f"{args.mode}, {args.connections} connection(s), {args.backend}: "
              f"{answer.get('gbit_s') or answer.get('per_s'):.4g} "
              f"({'Gbit/s' if 'gbit_s' in answer else '/s'})"
              f"{'' if args.calls_only else ' under py-spy'}")  # fmt: skip
        print(f"server CPU per {unit}: {cpu['user'] / done * 1e6:.1f} µs user, "
              f"{cpu['sys'] / done * 1e6:.1f} µs system\n")  # fmt: skip
        time.sleep(0.5)
        if collapsed.exists():
            print(top_of_profile(collapsed, args.top))
            busy = (cpu["user"] + cpu["sys"]) / done * 1e6
            print(f"\nbusy samples by part (the wait in epoll left out), "
                  f"of {busy:.1f} µs per {unit}:")  # fmt: skip
            for part, share in parts_of_profile(collapsed, HERE.parent).items():
                print(f"{100 * share:5.1f}%  {share * busy:6.1f} µs  {part}")
        stats_path = Path(scratch) / "cprofile.out"
        answer, _ = run(args.mode, args.connections, args.seconds, args.backend, spy=None,
                        env={"BENCH_PROFILE": str(stats_path)})  # fmt: skip
        stats = pstats.Stats(str(stats_path))
        if os.environ.get("PROFILE_KEEP"):
            shutil.copy(stats_path, os.environ["PROFILE_KEEP"])
        calls = sum(entry[1] for entry in stats.stats.values())  # type: ignore[attr-defined]
        print(f"\ncProfile: {calls / units(args.mode, answer):.0f} Python calls per {unit} "
              f"(primitive and recursive, whole server run)")  # fmt: skip
        per_file: collections.Counter[str] = collections.Counter()
        for (filename, _, _), entry in stats.stats.items():  # type: ignore[attr-defined]
            parts = Path(filename).parts
            short = "/".join(parts[parts.index("aionetstack"):]) if "aionetstack" in parts else (
                Path(filename).name if filename != "~" else "builtins")  # fmt: skip
            per_file[short] += entry[1]
        done = units(args.mode, answer)
        print("calls per unit by file: " + ", ".join(
            f"{name} {count / done:.1f}" for name, count in per_file.most_common(14)))  # fmt: skip
        stats.sort_stats("tottime").print_stats(15)
        stats.sort_stats("ncalls").print_stats(int(os.environ.get("PROFILE_TOP", "30")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
