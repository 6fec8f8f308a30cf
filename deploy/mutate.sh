#!/usr/bin/env bash
# make mutate: mutation testing (TESTING.md, "Mutation testing").
#
#   deploy/mutate.sh [patches|gremlins|all] [target...]
#
# patches:  every deploy/mutants/NN-name.patch is applied to a clean copy of
#           the tree and its package's tests run with -short (what `make
#           test-unit` runs, so what must catch it). A patch that no longer
#           applies, or whose mutant survives, fails the run.
# gremlins: github.com/go-gremlins/gremlins on the security packages (TARGETS
#           below, or the names given), each with the efficacy and mutant
#           coverage bars. Gremlins copies only the module root, so it runs on
#           a copy whose go.mod replace paths are absolute, with GOWORK=off.
#           The copy's tests run unmutated first: if they fail, every mutant
#           would read "killed" and the figures would be worthless.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export GOTOOLCHAIN=local GOWORK=off
# The crash tests spawn children per trial; a few trials per mutant are enough.
export MOLTBOT_CRASH_TRIALS=${MOLTBOT_CRASH_TRIALS:-3}
GREMLINS=${GREMLINS:-$(go env GOPATH)/bin/gremlins}
WORKERS=${MUTATE_WORKERS:-2}
# A mutant's test run may take this many times the unmutated run (each
# mutant is compiled afresh, so a loaded machine needs headroom).
TIMEOUT_COEF=${MUTATE_TIMEOUT_COEFFICIENT:-10}
# Gremlins' full output per package is kept here (ignored by git).
LOGDIR=${MUTATE_LOG_DIR:-$root/.cache/mutate}
MIN_EFFICACY=${MUTATE_MIN_EFFICACY:-90}
MIN_COVERAGE=${MUTATE_MIN_COVERAGE:-80}

# name | module | package | only these files (regexp; empty: all of the package)
TARGETS=(
  "auth|services|./auth|"
  "envelope|services|./envelope|"
  "keyring|secretsd|./internal/keyring|"
  "pairing|pairingd|./internal/pairing|"
  "gateway-authz|gateway|./internal/api|^authz\.go$"
)

mode=${1:-all}; shift || true
work=$(mktemp -d "${TMPDIR:-/tmp}/moltbot-mutate.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT

# copy_tree DST: the working tree (tracked and untracked, not ignored) with
# every module's relative replace made absolute.
copy_tree() {
  local dst=$1 f
  mkdir -p "$dst"
  (cd "$root" && git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
    [ -e "$f" ] && printf '%s\0' "$f"
  done | xargs -0 cp --parents -t "$dst")
  for gomod in "$dst"/*/go.mod; do
    local mdir; mdir=$(dirname "$gomod")
    while read -r old new; do
      [ -n "$old" ] || continue
      (cd "$mdir" && go mod edit -replace "$old=$(cd "$mdir/$new" && pwd)")
    done < <(awk '/^replace /{ if ($4 ~ /^\.\.?\//) print $2, $4 }' "$gomod")
  done
  # Without the workspace each module needs its own complete requirements.
  for gomod in "$dst"/*/go.mod; do
    (cd "$(dirname "$gomod")" && go mod tidy >/dev/null 2>"$work/tidy.err") || { cat "$work/tidy.err"; echo "go mod tidy failed in the copy of $(dirname "${gomod#"$dst"/}")"; return 1; }
  done
}

# ---------------------------------------------------------------- patches
run_patches() {
  local copy=$work/patches fail=0 n=0 p mod pkg caught out
  copy_tree "$copy"
  shopt -s nullglob
  local patches=("$root"/deploy/mutants/*.patch)
  [ ${#patches[@]} -gt 0 ] || { echo "patches: none in deploy/mutants"; return 1; }
  echo "== patch mutants (${#patches[@]}): each must make a -short test fail"
  for p in "${patches[@]}"; do
    n=$((n+1))
    read -r mod pkg < <(sed -n 's/^Package: *//p' "$p" | head -1)
    caught=$(sed -n 's/^Caught-by: *//p' "$p" | head -1)
    printf '%-44s %-32s ' "$(basename "$p")" "$mod/${pkg#./}"
    if [ -z "$mod" ] || [ -z "$pkg" ] || [ ! -d "$copy/$mod" ]; then
      echo "BAD HEADER (needs 'Package: <module> <./package>')"; fail=$((fail+1)); continue
    fi
    if ! (cd "$copy" && git apply -p1 "$p" 2>"$work/apply.err"); then
      echo "DOES NOT APPLY (rebase it on main):"; sed 's/^/    /' "$work/apply.err"; fail=$((fail+1)); continue
    fi
    if out=$(cd "$copy/$mod" && go test -short -count=1 -timeout 10m "$pkg" 2>&1); then
      echo "SURVIVED"; echo "$out" | tail -5 | sed 's/^/    /'; fail=$((fail+1))
    elif grep -qE '^(FAIL|--- FAIL)' <<<"$out" && ! grep -qE '\[(build|setup) failed\]' <<<"$out"; then
      local by; by=$(grep -oE -- '--- FAIL: [A-Za-z0-9_]+( |$)' <<<"$out" | sed 's/ *$//' | sort -u | head -3 | sed 's/--- FAIL: //' | paste -sd, -)
      echo "killed by ${by:-?}"
      if [ -n "$caught" ] && ! grep -q -- "--- FAIL: ${caught%% *}" <<<"$out"; then
        echo "    note: header says Caught-by: $caught"
      fi
    else
      echo "DOES NOT COMPILE (a mutant must build; fix the patch):"; echo "$out" | tail -8 | sed 's/^/    /'; fail=$((fail+1))
    fi
    (cd "$copy" && git apply -R -p1 "$p") || { rm -rf "$copy"; copy_tree "$copy"; }
  done
  echo "patches: $n mutants, $((n-fail)) killed, $fail survived or broken"
  [ "$fail" -eq 0 ]
}

# ---------------------------------------------------------------- gremlins
run_gremlins() {
  local copy=$work/gremlins fail=0 t name mod pkg only
  [ -x "$GREMLINS" ] || { echo "gremlins not installed: run \`make tools-mutate\`"; return 1; }
  copy_tree "$copy"
  local want=("$@")
  printf '\n%-14s %-40s %7s %6s %8s %9s %9s  %s\n' package path killed lived "not cov" efficacy coverage verdict > "$work/table"
  for t in "${TARGETS[@]}"; do
    IFS='|' read -r name mod pkg only <<<"$t"
    if [ ${#want[@]} -gt 0 ] && [[ " ${want[*]} " != *" $name "* ]]; then continue; fi
    echo "== gremlins: $name ($mod/${pkg#./})"
    echo "-- unmutated tests"
    if ! (cd "$copy/$mod" && go test -count=1 -timeout 10m "$pkg"); then
      echo "the unmutated copy's tests fail: the set-up is broken, so no figure would mean anything"
      return 1
    fi
    # Gremlins walks the package directory and its subdirectories, with
    # file paths relative to it; one regexp (it reads only one) keeps it to
    # the package's own files ("/" = a subpackage), minus those not in $only.
    local skip="/" f
    for f in "$copy/$mod/${pkg#./}"/*.go; do
      f=$(basename "$f")
      [[ $f == *_test.go ]] && continue
      if [ -n "$only" ] && ! [[ $f =~ $only ]]; then skip+="|^${f//./\\.}\$"; fi
    done
    mkdir -p "$LOGDIR"
    local log=$LOGDIR/$name.log rc=0
    (cd "$copy/$mod" && nice "$GREMLINS" unleash --workers "$WORKERS" --test-cpu 1 \
      --timeout-coefficient "$TIMEOUT_COEF" -E "$skip" \
      --threshold-efficacy "$MIN_EFFICACY" --threshold-mcover "$MIN_COVERAGE" "$pkg") >"$log" 2>&1 || rc=$?
    grep -E '^ *(LIVED|NOT COVERED|TIMED OUT)' "$log" | sort -k2 || true
    grep -E '^(Mutation testing completed|Killed:|Timed out:|Test efficacy|Mutator coverage)' "$log" || true
    local k l nc eff cov verdict=ok
    k=$(sed -nE 's/^Killed: ([0-9]+), Lived: ([0-9]+), Not covered: ([0-9]+).*/\1/p' "$log")
    l=$(sed -nE 's/^Killed: ([0-9]+), Lived: ([0-9]+), Not covered: ([0-9]+).*/\2/p' "$log")
    nc=$(sed -nE 's/^Killed: ([0-9]+), Lived: ([0-9]+), Not covered: ([0-9]+).*/\3/p' "$log")
    eff=$(sed -nE 's/^Test efficacy: (.*)$/\1/p' "$log")
    cov=$(sed -nE 's/^Mutator coverage: (.*)$/\1/p' "$log")
    if [ -z "$k" ]; then
      verdict="ERROR (see below)"; tail -20 "$log"
    elif [ "$rc" -ne 0 ]; then
      verdict="BELOW BAR (efficacy >= $MIN_EFFICACY%, coverage >= $MIN_COVERAGE%)"
    fi
    [ "$verdict" = ok ] || fail=$((fail+1))
    printf '%-14s %-40s %7s %6s %8s %9s %9s  %s\n' "$name" "$mod/${pkg#./}${only:+ ($only)}" "${k:--}" "${l:--}" "${nc:--}" "${eff:--}" "${cov:--}" "$verdict" >> "$work/table"
  done
  cat "$work/table"
  [ "$fail" -eq 0 ]
}

rc=0
case "$mode" in
  patches) run_patches || rc=1 ;;
  gremlins) run_gremlins "$@" || rc=1 ;;
  all) run_patches || rc=1; run_gremlins "$@" || rc=1 ;;
  *) echo "usage: $0 [patches|gremlins|all] [target...]"; exit 2 ;;
esac
[ "$rc" -eq 0 ] && echo "mutate: PASS" || echo "mutate: FAIL"
exit "$rc"
