#!/usr/bin/env bash
# make test-kernels: the unit tests (all but the pipeline ones, which make test
# runs) under every OpenBLAS kernel a user may have, at 1 and 2 threads:
# OPENBLAS_CORETYPE unset (apq's own choice), Haswell, SkylakeX (when the CPU
# has AVX-512) and Prescott (OpenBLAS's generic kernel). DESIGN.md §8.
# Usage: scripts/test-kernels.sh build/apq-test
# Prints one line per cell and ends with "N passed, N failed" (test runs over
# all cells); exit status 1 when any cell failed.
set -u
runner=${1:?usage: $0 build/apq-test}
kernels="unset Haswell Prescott"
grep -qw avx512f /proc/cpuinfo && kernels="unset Haswell SkylakeX Prescott"
grep -qw avx2 /proc/cpuinfo || kernels=${kernels/Haswell/}
passed=0 failed=0 bad=0
log=$(mktemp) || exit 1
trap 'rm -f "$log"' EXIT
for k in $kernels; do
    for t in 1 2; do
        if [ "$k" = unset ]; then
            env -u OPENBLAS_CORETYPE APQ_THREADS=$t "$runner" -x pipeline_ >"$log" 2>&1
        else
            OPENBLAS_CORETYPE=$k APQ_THREADS=$t "$runner" -x pipeline_ >"$log" 2>&1
        fi
        rc=$?
        line=$(tail -n 1 "$log")
        used=$(sed -n 's/.*OpenBLAS kernel \([A-Za-z0-9]*\) .*/\1/p' "$log" | head -n 1)
        p=$(echo "$line" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p')
        f=$(echo "$line" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p')
        if [ -z "$p" ] || [ -z "$f" ]; then
            p=0 f=1
            echo "test-kernels: OPENBLAS_CORETYPE=$k APQ_THREADS=$t: the runner ended without its summary line (exit $rc):" >&2
            tail -n 5 "$log" >&2
        fi
        # the kernel asked for must be the one that ran (OpenBLAS may fall back)
        if [ "$k" != unset ] && [ "${used,,}" != "${k,,}" ]; then
            echo "test-kernels: asked for $k, OpenBLAS ran ${used:-?}" >&2
            f=$((f + 1))
        fi
        [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
        [ "$f" -gt 0 ] && { bad=$((bad + 1)); grep -E '^FAIL|CHECK|rel err' "$log" | head -n 20 >&2; }
        printf 'OPENBLAS_CORETYPE=%-8s (ran %-8s) APQ_THREADS=%d: %s\n' "$k" "${used:-?}" "$t" "$line"
        passed=$((passed + p)) failed=$((failed + f))
    done
done
echo "$passed passed, $failed failed"
[ "$bad" -eq 0 ]
