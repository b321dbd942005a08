#!/usr/bin/env bash
# Builds and runs the libFuzzer targets.
#
#   Fuzz/run.sh TARGET [SECONDS]     build TARGET and fuzz it (default 60 s); 0 = until a finding
#   Fuzz/run.sh all SECONDS          every target in turn, SECONDS each
#   Fuzz/run.sh build [TARGET|all]   build only
#   Fuzz/run.sh repro TARGET FILE... run inputs once, verbosely (FUZZ_VERBOSE=1)
#   Fuzz/run.sh seeds TARGET         regenerate a target's seeds into Fuzz/Corpus/TARGET
#   Fuzz/run.sh merge TARGET         add the working corpus's new coverage to Fuzz/Corpus/TARGET
#   Fuzz/run.sh list                 the targets
#
# Targets: canary frame-decoder event-decoder snapshot-decoder api-sequence.
#
# Each target is the package's sources compiled with -sanitize=fuzzer,address (libFuzzer and
# AddressSanitizer) and -enable-testing, linked with the target's harness, which reaches the
# internals through `@testable import`. Build products, the growing working corpus, crash
# artifacts, logs and the binaries live in Fuzz/.work/ (ignored by git).
#
# A finding (crash, trap, broken invariant, timeout, out-of-memory) fails the run and is copied
# to Fuzz/FailCases/TARGET/, where the regression tests replay it (set FUZZ_KEEP_FAILCASES=0 to
# only report it). The canary is the exception: it must fail within its time, and the run fails
# if it does not.
#
# Environment: SWIFTC (default swiftc), FUZZ_JOBS_FLAGS (extra libFuzzer flags), FUZZ_VERBOSE=1
# (targets print their parameters), FUZZ_KEEP_FAILCASES (default 1).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
FUZZ="$ROOT/Fuzz"
WORK="$FUZZ/.work"
BIN="$WORK/bin"
if [ -d /opt/swift/usr/bin ]; then export PATH="/opt/swift/usr/bin:$PATH"; fi
SWIFTC=${SWIFTC:-swiftc}
SANITIZE="-sanitize=fuzzer,address"
# -O with preconditions and assertions on: the engine's own checks are part of the oracle.
OPT="-O -assert-config Debug -gline-tables-only -swift-version 6"
ALL_TARGETS="canary frame-decoder event-decoder snapshot-decoder api-sequence"

# TARGET → harness folder, libraries, -max_len, -timeout (seconds per input).
target_dir() {
  case "$1" in
    canary) echo Canary ;;
    frame-decoder) echo FrameDecoder ;;
    event-decoder) echo EventDecoder ;;
    snapshot-decoder) echo SnapshotDecoder ;;
    api-sequence) echo APISequence ;;
    *) echo "unknown target '$1' (targets: $ALL_TARGETS)" >&2; exit 2 ;;
  esac
}
target_libs() {
  case "$1" in
    canary | frame-decoder) echo "CouponLog" ;;
    *) echo "CouponLog CouponStore" ;;
  esac
}
target_max_len() {
  case "$1" in
    frame-decoder) echo 16384 ;;
    api-sequence) echo 8192 ;;
    *) echo 4096 ;;
  esac
}
target_timeout() { echo 10; }

log() { printf '%s\n' "$*" >&2; }

# Whether any file under the given paths is newer than $1 (or $1 is missing).
stale() {
  local product=$1
  shift
  [ -e "$product" ] || return 0
  [ -n "$(find "$@" -name '*.swift' -newer "$product" -print -quit)" ]
}

# Compiles Sources/$1 into $WORK/modules/$1.o and its .swiftmodule (instrumented, testable).
build_library() {
  local name=$1 dir="$WORK/modules"
  mkdir -p "$dir"
  local deps=()
  [ "$name" = CouponStore ] && deps=("$ROOT/Sources/CouponLog")
  if stale "$dir/$name.o" "$ROOT/Sources/$name" "${deps[@]}"; then
    log "== building $name (instrumented)"
    # shellcheck disable=SC2046,SC2086
    "$SWIFTC" $OPT $SANITIZE -enable-testing -parse-as-library -wmo -module-name "$name" \
      -I "$dir" -emit-module -emit-module-path "$dir/$name.swiftmodule" \
      -c $(find "$ROOT/Sources/$name" -name '*.swift' | sort) -o "$dir/$name.o.tmp" \
      2> >(grep -v 'ld.gold: warning' >&2)
    mv "$dir/$name.o.tmp" "$dir/$name.o"
  fi
}

# Whether the target has a harness to build (snapshot-decoder waits for the snapshot sources).
available() {
  local target=$1
  if [ "$target" = snapshot-decoder ]; then
    [ -d "$ROOT/Sources/CouponStore/Snapshot" ] \
      && [ -n "$(find "$FUZZ/SnapshotDecoder" -name '*.swift' -print -quit)" ]
    return
  fi
  return 0
}

build_target() {
  local target=$1
  local dir
  dir=$(target_dir "$target")
  if ! available "$target"; then
    log "== $target: skipped (no snapshot sources yet; it is wired when branch snap lands)"
    return 1
  fi
  local libs objects=() module_dirs=("$FUZZ/Support" "$FUZZ/$dir")
  libs=$(target_libs "$target")
  for lib in $libs; do
    build_library "$lib"
    objects+=("$WORK/modules/$lib.o")
    module_dirs+=("$ROOT/Sources/$lib")
  done
  mkdir -p "$BIN"
  local relink=0
  for object in "${objects[@]}"; do [ "$object" -nt "$BIN/$target" ] && relink=1; done
  if [ "$relink" = 1 ] || stale "$BIN/$target" "${module_dirs[@]}"; then
    log "== building $target"
    # shellcheck disable=SC2046,SC2086
    "$SWIFTC" $OPT $SANITIZE -parse-as-library -module-name "Fuzz$dir" -I "$WORK/modules" \
      $(find "$FUZZ/Support" "$FUZZ/$dir" -name '*.swift' | sort) "${objects[@]}" \
      -o "$BIN/$target" 2> >(grep -v 'ld.gold: warning' >&2)
  fi
  return 0
}

# Prints "executions exec/s cov ft" from a libFuzzer log.
stats_of() {
  local file=$1
  local runs speed cov ft
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$file" | grep -o '[0-9]*$' | tail -1)
  speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$file" | grep -o '[0-9]*$' | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$file" | tail -1 | grep -o '[0-9]*')
  ft=$(grep -o 'ft: [0-9]*' "$file" | tail -1 | grep -o '[0-9]*')
  echo "${runs:-?} ${speed:-?} ${cov:-?} ${ft:-?}"
}

# Fuzzes one target for $2 seconds. Returns 0 when the run is a success (for the canary: when it
# found its planted bug).
run_target() {
  local target=$1 seconds=$2
  build_target "$target" || return 0
  local corpus="$WORK/corpus/$target" seeds="$FUZZ/Corpus/$target"
  local artifacts="$WORK/artifacts/$target" logs="$WORK/logs"
  mkdir -p "$corpus" "$seeds" "$artifacts" "$logs"
  rm -f "$artifacts"/*
  local logfile
  logfile="$logs/$target-$(date +%Y%m%d-%H%M%S).log"
  log "== fuzzing $target for ${seconds}s (log: ${logfile#"$ROOT"/})"
  local status=0
  # The Swift backtracer is off: libFuzzer prints its own report, and symbolicating in-process
  # would cost seconds per crash.
  # shellcheck disable=SC2086
  SWIFT_BACKTRACE=enable=no ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:symbolize=1" \
    "$BIN/$target" "$corpus" "$seeds" -max_total_time="$seconds" \
    -max_len="$(target_max_len "$target")" -timeout="$(target_timeout "$target")" \
    -rss_limit_mb=2560 -print_final_stats=1 -artifact_prefix="$artifacts/" \
    ${FUZZ_JOBS_FLAGS:-} >"$logfile" 2>&1 || status=$?
  local found
  found=$(find "$artifacts" -type f | head -20)
  read -r runs speed cov ft <<<"$(stats_of "$logfile")"
  local findings=0
  [ -n "$found" ] && findings=$(echo "$found" | wc -l)
  printf '%-17s %10s execs %8s exec/s  cov %6s  ft %7s  findings %s\n' \
    "$target" "$runs" "$speed" "$cov" "$ft" "$findings" | tee -a "$WORK/summary.txt"
  if [ "$target" = canary ]; then
    if [ "$status" -ne 0 ] && [ -n "$found" ]; then
      log "== canary: planted bug found (as it must be): the fuzz setup works"
      return 0
    fi
    log "== canary: planted bug NOT found in ${seconds}s: the fuzz setup is broken"
    return 1
  fi
  if [ "$status" -eq 0 ] && [ -z "$found" ]; then return 0; fi
  log "== $target: FINDING (libFuzzer exit status $status)"
  grep -E 'Fatal error|fuzz finding|ERROR: (AddressSanitizer|libFuzzer)|SUMMARY|ALARM' \
    "$logfile" | head -20 >&2 || true
  for file in $found; do
    if [ "${FUZZ_KEEP_FAILCASES:-1}" != 0 ]; then
      mkdir -p "$FUZZ/FailCases/$target"
      cp "$file" "$FUZZ/FailCases/$target/"
      log "   kept Fuzz/FailCases/$target/$(basename "$file")"
    else
      log "   input: $file ($(wc -c <"$file") bytes): $(head -c 256 "$file" | od -An -tx1 | tr -d '\n')"
    fi
  done
  log "   reproduce: Fuzz/run.sh repro $target FILE"
  return 1
}

command=${1:-}
case "$command" in
  "" | -h | --help)
    sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'
    ;;
  list)
    echo "$ALL_TARGETS"
    ;;
  build)
    for target in $( [ "${2:-all}" = all ] && echo "$ALL_TARGETS" || echo "$2"); do
      build_target "$target" || true
    done
    ;;
  repro)
    target=${2:?"usage: Fuzz/run.sh repro TARGET FILE..."}
    shift 2
    build_target "$target"
    mkdir -p "$WORK/artifacts/repro"
    SWIFT_BACKTRACE=enable=no FUZZ_VERBOSE=1 ASAN_OPTIONS=detect_leaks=0 "$BIN/$target" \
      -artifact_prefix="$WORK/artifacts/repro/" "$@"
    ;;
  seeds)
    target=${2:?"usage: Fuzz/run.sh seeds TARGET"}
    build_target "$target"
    FUZZ_WRITE_SEEDS="$FUZZ/Corpus/$target" "$BIN/$target"
    ;;
  merge)
    target=${2:?"usage: Fuzz/run.sh merge TARGET"}
    build_target "$target"
    mkdir -p "$FUZZ/Corpus/$target" "$WORK/corpus/$target"
    SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0 "$BIN/$target" -merge=1 \
      -max_len="$(target_max_len "$target")" "$FUZZ/Corpus/$target" "$WORK/corpus/$target"
    ;;
  all)
    seconds=${2:?"usage: Fuzz/run.sh all SECONDS"}
    failed=""
    for target in $ALL_TARGETS; do
      run_target "$target" "$seconds" || failed="$failed $target"
    done
    if [ -n "$failed" ]; then
      log "== fuzzing FAILED:$failed"
      exit 1
    fi
    log "== fuzzing passed: every target ran clean and the canary found its bug"
    ;;
  *)
    target_dir "$command" >/dev/null
    run_target "$command" "${2:-60}"
    ;;
esac
