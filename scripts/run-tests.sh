#!/usr/bin/env bash
# The whole test run behind `make test`, stage by stage, with the time each stage took.
#
# The unit tests run at the same time as the notebooks and the quick book build: most of their time is
# TensorFlow building graphs, which uses one core, so two streams on a 2-core machine finish sooner than
# one after the other. Each stream writes its own log, printed when it ends.
set -uo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
export LIVERLIB_PROFILE=quick
export LIVERLIB_ARTIFACTS_DIR="${LIVERLIB_ARTIFACTS_DIR:-$PWD/_build/test-artifacts}"
LOGS=_build/test-logs
mkdir -p "$LOGS"
stages=() ; times=() ; codes=()
record() { stages+=("$1"); times+=("$2"); codes+=("$3"); }
run_stage() {
  local name="$1"; shift
  echo "==== $name: $*"
  local start=$SECONDS
  "$@"
  local code=$?
  record "$name" $((SECONDS - start)) $code
  return $code
}
# a stage in the background: output to a log; its time and status to a file read when it is collected
start_bg() {
  local name="$1" log="$2"; shift 2
  echo "==== $name (in parallel, log: $log): $*"
  ( start=$SECONDS; "$@" > "$log" 2>&1; code=$?; echo "$((SECONDS - start)) $code" > "$log.status" ) &
}
collect_bg() {
  local name="$1" log="$2"
  echo "==== $name: output"
  cat "$log"
  read -r secs code < "$log.status"
  record "$name" "$secs" "$code"
  return "$code"
}

status=0
run_stage "setup (.venv)" make --no-print-directory setup || { echo "setup failed"; exit 1; }
run_stage "chromium" make --no-print-directory browser || status=1
rm -f "$LOGS"/*.status
start_bg "unit tests" "$LOGS/unit.log" $VENV/bin/pytest -q --durations=20 tests -m "not browser and not benchmark"
unit_pid=$!
run_stage "notebooks (nbval)" $VENV/bin/pytest -q --nbval-lax -p no:randomly notebooks/ || status=1
run_stage "book (quick profile)" $VENV/bin/jupyter-book build . -W -n --keep-going --path-output _build/quick || status=1
run_stage "benchmarks (smoke mode)" $VENV/bin/pytest -q tests -m benchmark || status=1
wait "$unit_pid"
collect_bg "unit tests (parallel)" "$LOGS/unit.log" || status=1
if [ -f _build/quick/_build/html/index.html ]; then
  LIVERLIB_BOOK_HTML=_build/quick/_build/html run_stage "browser tests" $VENV/bin/pytest -q tests -m browser || status=1
else
  echo "browser tests skipped: the book was not built"; status=1
fi
echo
echo "==== time per stage (unit tests ran alongside the notebooks and the book)"
for i in "${!stages[@]}"; do
  printf '%-28s %5d s  %s\n' "${stages[$i]}" "${times[$i]}" "$([ "${codes[$i]}" = 0 ] && echo ok || echo FAILED)"
done
printf '%-28s %5d s\n' "total (wall clock)" "$SECONDS"
exit $status
