"""Regenerate throughput.json: python tests/core/tcp/snapshots/regenerate.py (from the repo root).

The table is deterministic (seeded virtual time), so the test compares it exactly;
regenerate only after an intended change in TCP behaviour, and review the diff.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[4]))

from aionetstack.testing.netsim import throughput_table


def main() -> None:
    rows = throughput_table()
    target = Path(__file__).with_name("throughput.json")
    target.write_text(json.dumps(rows, indent=1) + "\n")
    for row in rows:
        print(
            f"{row['congestion_control']:8} loss={row['loss']:<6} "
            f"goodput={row['goodput_bytes_per_s']:>9} B/s "
            f"capacity={row['capacity_fraction']:<7} mathis={row['mathis_fraction']}"
        )


if __name__ == "__main__":
    main()
