#!/bin/bash
# The kind matrix's test time (tests/test_kind_matrix.py), this checkout's against a contender's
# (a git revision, default main), back to back in one invocation: wall time, and the CPU time of
# the pytest process and of its worker processes (RUSAGE_SELF / RUSAGE_CHILDREN at exit).
#   benchmarks/kind_matrix_time.sh [REVISION]
set -euo pipefail
rev="${1:-main}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
py="$repo/.venv/bin/python"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/contender/tests" "$scratch/plugin"
git -C "$repo" show "$rev:tests/test_kind_matrix.py" > "$scratch/contender/tests/test_kind_matrix.py"
git -C "$repo" show "$rev:tests/conftest.py" > "$scratch/contender/tests/conftest.py"
cat > "$scratch/plugin/cpu_report.py" <<'PY'
import resource, sys
def pytest_unconfigure(config):
    own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    sys.__stderr__.write(f"CPU: pytest process {own.ru_utime + own.ru_stime:.1f} s, its worker processes {workers.ru_utime + workers.ru_stime:.1f} s\n")
PY
measure() {  # NAME FOLDER
    echo "== $1 ($(uptime | sed 's/.*load average/load average/'))"
    (cd "$2" && PYTHONPATH="$scratch/plugin" /usr/bin/time -f "wall %e s, user %U s, sys %S s" \
        "$py" -m pytest -q -p cpu_report -p no:cacheprovider tests/test_kind_matrix.py 2>&1 | tail -3)
}
measure "$rev" "$scratch/contender"
measure "this checkout" "$repo"
echo "== end ($(uptime | sed 's/.*load average/load average/'))"
