#!/usr/bin/env bash
# The whole test run behind `make test`, stage by stage, with the time each stage took.
#
# Two streams share the 2 cores. One: the notebooks (nbval), the quick book build (from nbval's outputs), the
# browser tests, the speed benchmarks' smoke runs. The other: the unit tests, then the recipe and study
# benchmarks' smoke runs. Most of their time is TensorFlow building graphs, which uses one core, so two
# streams finish sooner than one after the other. The second stream writes its logs, printed when it ends.
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
# a stage of the background stream: output to a log; its time and status to a file read when it is collected
logged_stage() {
  local name="$1" log="$2"; shift 2
  echo "==== $name (in parallel, log: $log): $*"
  local start=$SECONDS
  "$@" > "$log" 2>&1
  local code=$?
  echo "$((SECONDS - start)) $code" > "$log.status"
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
BENCH=tests/test_benchmarks.py
(
  logged_stage "unit tests" "$LOGS/unit.log" $VENV/bin/pytest -q --durations=20 tests -m "not browser and not benchmark"
  logged_stage "benchmarks, recipe and study (smoke)" "$LOGS/bench.log" \
    $VENV/bin/pytest -q --durations=10 "$BENCH::test_the_recipe_crop_and_study_benchmarks_run_in_smoke_mode"
) &
second_stream=$!
# nbval stores each notebook that passed, with its outputs, in the quick book's jupyter-cache
# (notebooks/conftest.py): the book build then renders those outputs instead of running the chapters again
# (make book-quick runs what is left, the markdown pages with code, as make book does: execute_chapters.py)
run_stage "notebooks (nbval)" $VENV/bin/pytest -q --nbval-lax -p no:randomly notebooks/ \
  --nbval-cache _build/quick/_build/.jupyter_cache || status=1
run_stage "book (quick profile)" make --no-print-directory book-quick || status=1
if [ -f _build/quick/_build/html/index.html ]; then
  LIVERLIB_BOOK_HTML=_build/quick/_build/html run_stage "browser tests" $VENV/bin/pytest -q tests -m browser || status=1
else
  echo "browser tests skipped: the book was not built"; status=1
fi
# every benchmark marked for smoke runs, except the one the second stream runs
run_stage "benchmarks, speed (smoke)" $VENV/bin/pytest -q --durations=10 $BENCH -m benchmark \
  --deselect "$BENCH::test_the_recipe_crop_and_study_benchmarks_run_in_smoke_mode" || status=1
wait "$second_stream"
collect_bg "unit tests (parallel)" "$LOGS/unit.log" || status=1
collect_bg "benchmarks, recipe (parallel)" "$LOGS/bench.log" || status=1
echo
echo "==== time per stage (the unit tests, then the recipe and study benchmarks, ran alongside the rest)"
for i in "${!stages[@]}"; do
  printf '%-28s %5d s  %s\n' "${stages[$i]}" "${times[$i]}" "$([ "${codes[$i]}" = 0 ] && echo ok || echo FAILED)"
done
printf '%-28s %5d s\n' "total (wall clock)" "$SECONDS"
exit $status
