#!/usr/bin/env bash
# fuzz/triage.sh NAME — replay every build-fuzz/crash-NAME-* and sort it by
# where it faulted: inside Debian's HDF5 (its own bugs on damaged files,
# listed, not ours to fix) or anywhere else (apq's: exit 1).
set -u
cd "$(dirname "$0")/.."
h=$1 ours=0 hdf5=0
for f in build-fuzz/crash-"$h"-*; do
    [ -e "$f" ] || continue
    if out=$(build-fuzz/fuzz_"$h" "$f" 2>&1); then
        echo "no longer fails (fixed): $f"
        continue
    fi
    # the first stack frame that is not libc, the sanitizer runtime or libFuzzer
    frame=$(grep -E '^ +#[0-9]+ ' <<< "$out" |
        grep -vE 'libc\.so|/sysdeps/|__interceptor_|__asan|__sanitizer|__ubsan|fuzzer::|in abort |in raise |pthread_kill| in (malloc|calloc|realloc|free|memcpy|memmove|memset) ' |
        head -n 1)
    if grep -q 'libhdf5' <<< "$frame"; then
        hdf5=$((hdf5 + 1))
        echo "inside HDF5: $f: $(sed -E 's/^ +#[0-9]+ 0x[0-9a-f]+ //; s/ \(BuildId.*//' <<< "$frame")"
    else
        ours=$((ours + 1))
        echo "apq's: $f: ${frame:-no stack (a property or a leak: replay it)}" >&2
    fi
done
[ $((ours + hdf5)) -eq 0 ] || echo "fuzz_$h: $ours crash(es) in apq, $hdf5 inside HDF5"
[ "$ours" -eq 0 ]
