"""A/B runs of the stack server: two code trees, runs alternating, medians and the ratio.

``sudo python benchmarks/ab.py A_ROOT B_ROOT [--runs 5] [--seconds 2] [--only TEXT]
[--no-offload]`` (``--no-offload``: both servers on ``TunLink(offload=False)``, MTU 1500).
A_ROOT and B_ROOT are checkouts (directories holding ``aionetstack/``), e.g. made with
``git worktree add`` or ``git archive REV aionetstack | tar -x -C DIR``
(``--b-mtu 65535``: B's TUN at that MTU, so ``ab.py . . --b-mtu 65535`` compares two
MTUs on the same code). Each serves the
benchmark scenarios over its own TUN (198.18.0.2 and 198.18.1.2); the blocking client
alternates between them run by run. Every speed claim in docs/performance.md names
the A/B command that measured it. A checkout holding C sources (``wire/_csum.c``,
``core/_gro.c``, ``link/_gso.c``) but not their builds (a fresh worktree) gets them
compiled in place first, as ``pip install`` would; a checkout with ``setup.py`` gets
its mypyc modules compiled too (``setup.py build_ext --inplace``: setuptools 77 or
later in this interpreter), so a tree is never compared interpreted against a
compiled one.
"""

from __future__ import annotations

import argparse
import os
import runpy
import statistics
import subprocess
import sys
import sysconfig
from pathlib import Path

from run import EXTRA, SCENARIOS, Backend, measure, progress, server

from aionetstack.testing.netns import network_namespace

#: The package's C modules (pyproject.toml's ext-modules), by source.


def build_native(tree: str) -> str:
    """Compile the tree's C modules in place where not built since their last edit (or
    their shared header's); say which are C."""
    package = Path(tree) / "aionetstack"
    header = package / "wire" / "rfc1071.h"
    found = []
    for source in sorted(package.glob("*/_*.c")):  # every C module (pyproject's ext-modules)
        found.append(str(source.relative_to(package)))
        built = source.with_name(source.stem + sysconfig.get_config_var("EXT_SUFFIX"))
        newest = max(source.stat().st_mtime, header.stat().st_mtime if header.exists() else 0)
        if not built.exists() or built.stat().st_mtime < newest:
            compiler = (sysconfig.get_config_var("CC") or "cc").split()
            include = sysconfig.get_paths()["include"]
            flags = ["-O2", "-shared", "-fPIC", "-I", include]
            command = [*compiler, *flags, str(source), "-o", str(built)]
            subprocess.run(command, check=True)
    kinds = "C: " + ", ".join(found) if found else "Python (no C sources)"
    return kinds + build_compiled(tree)


def build_compiled(tree: str) -> str:
    """Compile the tree's mypyc modules in place (``setup.py``, where the tree has one:
    a tree left interpreted would be compared with a compiled one) unless built since
    the sources they hold were edited (``compiled.py``'s rule); say how many are."""
    root = Path(tree)
    if not (root / "setup.py").exists() or not (root / "aionetstack" / "compiled.py").exists():
        return ""
    compiled = runpy.run_path(str(root / "aionetstack" / "compiled.py"))
    names = compiled["COMPILED_MODULES"]
    suffix = sysconfig.get_config_var("EXT_SUFFIX")

    def built() -> list[tuple[str, str]]:
        files = [(name, root / (name.replace(".", "/") + suffix)) for name in names]
        return [(name, str(file)) for name, file in files if file.exists()]

    if len(built()) < len(names) or compiled["stale_among"](built(), root / "aionetstack"):
        subprocess.run(
            [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
            cwd=root, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    return f"; mypyc: {len(built())} of {len(names)} modules"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--only", help="scenarios whose label contains this text")
    parser.add_argument(
        "--b-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for B's server (e.g. MALLOC_TRIM_THRESHOLD_=...)",
    )
    parser.add_argument(
        "--b-mtu",
        type=int,
        metavar="MTU",
        help="B's TUN at this MTU (the same tree twice compares two MTUs)",
    )
    parser.add_argument(
        "--no-offload",
        action="store_true",
        help="both servers on TunLink(offload=False), MTU 1500 (for the 'no offload' scenarios)",
    )
    parser.add_argument(
        "--congestion",
        default=None,
        help="the kernel client's TCP_CONGESTION (e.g. cubic); unset: the system default",
    )
    parser.add_argument(
        "--settle-allocator",
        action="store_true",
        help="both servers free one 4 MiB block first (server.py): each server process "
        "lasts all its runs, so glibc's mode it lands in would otherwise decide an upload A/B",
    )
    args = parser.parse_args()
    kinds = {tree: build_native(tree) for tree in (args.a, args.b)}
    plain = ["--no-offload", "--mtu", "1500"] if args.no_offload else []
    if args.settle_allocator:
        plain.append("--settle-allocator")
    b_mtu = ["--mtu", str(args.b_mtu)] if args.b_mtu else []  # server.py: the last wins
    # The 'no offload' scenarios run on --no-offload servers only, the others never: a
    # label must say what ran.
    pool = EXTRA if args.no_offload else SCENARIOS
    chosen = [s for s in pool if args.only is None or args.only in s.label]
    backends = {
        "A": Backend("A", "198.18.0.2", [server("stack", "198.18.0.2", "--cpu", "1", *plain)],
                     env={"BENCH_CODE": os.path.abspath(args.a)}),
        "B": Backend("B", "198.18.1.2", [server("stack", "198.18.1.2", "--tun", "aionsb1",
                                                "--cpu", "1", *plain, *b_mtu)],
                     env={"BENCH_CODE": os.path.abspath(args.b),
                          **dict(item.split("=", 1) for item in args.b_env)}),
    }  # fmt: skip
    scenarios = [type(s)(s.label, s.mode, s.connections, ("A", "B"), s.unit) for s in chosen]
    with network_namespace("aionsab"):
        subprocess.run(["sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1"], check=True)
        for backend in backends.values():
            backend.start()
        try:
            results = measure(scenarios, backends, args.runs, args.seconds,
                              congestion=args.congestion)  # fmt: skip
        finally:
            for backend in backends.values():
                backend.stop()
    progress("")
    print(f"A = {args.a} ({kinds[args.a]}), B = {args.b} ({kinds[args.b]}); "
          f"{args.runs} alternating runs of {args.seconds} s")  # fmt: skip
    for label, entry in results.items():
        a, b = (entry["backends"][n] for n in ("A", "B"))
        ma, mb = statistics.median(a["values"]), statistics.median(b["values"])
        print(f"{label:<40} A {ma:10.4g}  B {mb:10.4g}  B/A {mb / ma:5.2f}x   "
              f"µs user A {statistics.median(a['user_us']):.0f} B "
              f"{statistics.median(b['user_us']):.0f}  runs A {[round(v, 3) for v in a['values']]}"
              f" B {[round(v, 3) for v in b['values']]}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
