#!/usr/bin/env bash
# The whole test run behind `make test`, stage by stage, with the time each stage took.
set -uo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
export LIVERLIB_PROFILE=quick
export LIVERLIB_ARTIFACTS_DIR="${LIVERLIB_ARTIFACTS_DIR:-$PWD/_build/test-artifacts}"
stages=() ; times=() ; codes=()
run_stage() {
  local name="$1"; shift
  echo "==== $name: $*"
  local start=$SECONDS
  "$@"
  local code=$?
  stages+=("$name"); times+=($((SECONDS - start))); codes+=($code)
  return $code
}
status=0
run_stage "setup (.venv)" make --no-print-directory setup || { echo "setup failed"; exit 1; }
run_stage "chromium" make --no-print-directory browser || status=1
run_stage "unit tests" $VENV/bin/pytest -q tests -m "not browser" || status=1
run_stage "notebooks (nbval)" $VENV/bin/pytest -q --nbval-lax -p no:randomly notebooks/ || status=1
run_stage "book (quick profile)" $VENV/bin/jupyter-book build . -W -n --keep-going --path-output _build/quick || status=1
if [ -f _build/quick/_build/html/index.html ]; then
  LIVERLIB_BOOK_HTML=_build/quick/_build/html run_stage "browser tests" $VENV/bin/pytest -q tests -m browser || status=1
else
  echo "browser tests skipped: the book was not built"; status=1
fi
echo
echo "==== time per stage"
total=0
for i in "${!stages[@]}"; do
  printf '%-24s %5d s  %s\n' "${stages[$i]}" "${times[$i]}" "$([ "${codes[$i]}" = 0 ] && echo ok || echo FAILED)"
  total=$((total + times[$i]))
done
printf '%-24s %5d s\n' "total" "$total"
exit $status
