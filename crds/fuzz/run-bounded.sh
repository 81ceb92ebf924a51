#!/usr/bin/env bash
# Runs every multinet-crds fuzz target for a bounded time and fails if any target finds a crash.
#
#   crds/fuzz/run-bounded.sh [SECONDS_PER_TARGET]     (default 20, or $FUZZ_SECONDS)
#
# Toolchain: cargo fuzz's default AddressSanitizer build passes -Zsanitizer, which the stable
# compiler refuses. Everything fuzzed here is safe Rust, so the default is `--sanitizer none`:
# libFuzzer's coverage instrumentation (-Cpasses=sancov-module, -Cllvm-args=...) is stable and
# panics (failed asserts, overflow checks) are what the targets look for. FUZZ_SANITIZER=address
# turns AddressSanitizer on; on stable that needs RUSTC_BOOTSTRAP=1, which this script sets.
# Inputs found are kept in crds/fuzz/corpus/<target>, crashes in crds/fuzz/artifacts/<target>
# (both ignored by git); crds/fuzz/seeds/<target> are the committed starting inputs.
set -euo pipefail

seconds="${1:-${FUZZ_SECONDS:-20}}"
sanitizer="${FUZZ_SANITIZER:-none}"
fuzz_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
workspace_target="${CARGO_TARGET_DIR:-$fuzz_dir/../../target}"
target_dir="$workspace_target/fuzz-$sanitizer"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing; installing it from crates.io" >&2
    cargo install cargo-fuzz --locked
fi

if [[ "$sanitizer" != none ]]; then
    # The stable compiler accepts -Z flags only with this set.
    export RUSTC_BOOTSTRAP=1
fi

cd "$fuzz_dir"
build=(--sanitizer "$sanitizer" --target-dir "$target_dir")
cargo fuzz build "${build[@]}"

targets=$(cargo fuzz list)
passed=0
failed=0
for target in $targets; do
    mkdir -p "corpus/$target" "artifacts/$target" "seeds/$target"
    echo "== fuzzing $target for ${seconds}s (sanitizer: $sanitizer)" >&2
    if cargo fuzz run "${build[@]}" "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="artifacts/$target/" -print_final_stats=1; then
        passed=$((passed + 1))
    else
        echo "!! $target failed; crashing inputs are in crds/fuzz/artifacts/$target" >&2
        failed=$((failed + 1))
    fi
done

echo "fuzz: $passed passed, $failed failed"
[[ "$failed" -eq 0 ]]
