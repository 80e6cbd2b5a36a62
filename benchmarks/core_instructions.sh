#!/bin/bash
# Instructions executed by the sans-I/O TCP core (valgrind/callgrind "Ir"), two code trees:
# a cost comparison that does not depend on the machine's load, for A/B claims about the
# core made on a busy machine. The cost of starting Python and importing (a 0-byte run) is
# subtracted. String hashing is randomised per process, so equal trees differ by ~0.1%.
#
#   bash benchmarks/core_instructions.sh OLD_TREE NEW_TREE     (needs valgrind)
set -euo pipefail
PY=${PYTHON:-python3}
ir() { (cd "$1" && valgrind --tool=callgrind --callgrind-out-file=/dev/null "$PY" \
        benchmarks/core_segments.py $2 2>&1 | grep -o "Collected : [0-9]*" | grep -o "[0-9]*"); }
for tree in "$1" "$2"; do
    base=$(ir "$tree" "--megabytes 0")
    bulk=$(ir "$tree" "--megabytes 5")
    echo_=$(ir "$tree" "--echo 100 --transactions 3000")
    echo "$tree: start-up $base; bulk 5 MB net $((bulk - base)); echo 3 x 3000 net $((echo_ - base))"
done
