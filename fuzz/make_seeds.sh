#!/usr/bin/env bash
# fuzz/make_seeds.sh — the seed corpus of fuzz_h5: the real pipeline on the
# small space fuzz/space.ini and profile fuzz/profile.ini, each artifact
# prefixed with the byte that selects its reader (fuzz/fuzz_h5.c).
# Run from anywhere; writes fuzz/corpus/h5/<artifact>.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
r=$tmp/runs/fuzz
make -s PROFILE=fuzz PROF=fuzz/profile.ini SPACE=fuzz/space.ini RUNS="$tmp/runs" \
    REPORTS="$tmp/reports" "$r/bitfusion/verified.h5" "$r/predictor-quant.h5"
out=fuzz/corpus/h5
mkdir -p $out
put() { printf "\\$(printf %03o "$1")" | cat - "$2" > "$out/$3"; }
put 0 "$r/supernet.h5" supernet
put 1 "$r/predictor-fp32.h5" predictor-fp32
put 1 "$r/predictor-quant.h5" predictor-quant
put 2 "$r/bitfusion/lut.h5" lut
put 3 "$r/samples-fp32.h5" samples-fp32
put 129 "$r/samples-quant.h5" samples-quant # 129 % 6 = 3, bit 7 set: quantized samples
put 4 "$r/bitfusion/search.h5" search
put 5 "$r/bitfusion/verified.h5" verified
ls -l $out
