#!/usr/bin/env bash
# pretrained.sh — shipped artifacts (pretrained/<name>/): which of them this
# run may reuse instead of making them, and how a finished run packs them.
#
#   pretrained.sh plan  DIR      the artifacts of DIR this run may reuse, on one
#                                line (a subset of: supernet.h5 predictor-fp32.h5
#                                predictor-quant.h5); why not the others, on stderr
#   pretrained.sh fetch DIR NAME DEST
#                                copy DIR/NAME to DEST (atomically) after checking
#                                its checksum again; exit 1 with one line if it fails
#   pretrained.sh pack  DIR RUN [supernet]
#                                copy RUN's artifacts into DIR (the supernet, then
#                                each predictor as far as RUN has made them: a
#                                long run ships its supernet first) and write
#                                DIR/MANIFEST and DIR/SHA256SUMS
#
# The settings come from the environment, as pipeline.mk exports them: SPACE,
# PROF, SEED, SCHEDULE, DATA_FILES (the IDX files, blank separated).
#
# An artifact is reused only when its key in DIR/MANIFEST equals the key of
# this run and its SHA-256 matches. The keys chain: what the supernet is made
# from (space file, the profile's [train-supernet] section, seed, schedule,
# the IDX files' contents); a predictor's key adds the SHA-256 of the file it
# was made from (the shipped supernet, or the shipped fp32 predictor) and the
# profile sections that make it and its samples. So a predictor is reused only
# over the shipped supernet, and an edit to the profile's search or verify
# sections reuses everything. Comments and blank lines in the profile and
# space do not count. docs/formats.md "Shipped artifacts" has the format.
set -euo pipefail

MANIFEST_VERSION=1
ARTIFACTS="supernet.h5 predictor-fp32.h5 predictor-quant.h5"

die() {
    echo "pretrained.sh: $*" >&2
    exit 1
}
sha() { sha256sum "$1" | cut -d' ' -f1; }
# The named sections of the profile, comments, blank lines and blanks removed.
sections() {
    awk -v want="$1" 'BEGIN { n = split(want, w, " "); for (i = 1; i <= n; i++) keep["[" w[i] "]"] = 1 }
        { sub(/[;#].*/, ""); gsub(/[ \t\r]/, "") }
        /^\[/ { cur = $0; if (cur in keep) print cur; next }
        $0 != "" && (cur in keep) { print }' "$PROF"
}
key_supernet() {
    {
        echo "apq-pretrained $MANIFEST_VERSION supernet.h5"
        sed -e 's/[;#].*//' -e 's/[ \t\r]//g' -e '/^$/d' "$SPACE"
        sections "train-supernet"
        echo "seed=$SEED schedule=${SCHEDULE:-}"
        for f in $DATA_FILES; do echo "$(basename "$f") $(sha "$f")"; done | sort
    } | sha256sum | cut -d' ' -f1
}
# key_predictor NAME PARENT_KEY PARENT_SHA SECTIONS
key_predictor() {
    {
        echo "apq-pretrained $MANIFEST_VERSION $1"
        echo "$2 $3"
        sections "$4"
        echo "seed=$SEED"
    } | sha256sum | cut -d' ' -f1
}
# field NAME COLUMN: the manifest's column (2 = sha256, 3 = key) for NAME
field() { awk -v n="$1" -v c="$2" '$1 == n { print $c }' "$DIR/MANIFEST"; }

# The keys of this run, given the shipped parents' checksums.
keys() {
    K_SN=$(key_supernet)
    K_FP=$(key_predictor predictor-fp32.h5 "$K_SN" "$(field supernet.h5 2)" \
        "measure sample-fp32 train-predictor")
    K_Q=$(key_predictor predictor-quant.h5 "$K_FP" "$(field predictor-fp32.h5 2)" \
        "measure sample-quant transfer-predictor")
}

plan() {
    [ -f "$DIR/MANIFEST" ] || die "$DIR/MANIFEST: no such file; nothing shipped to reuse"
    head -n 1 "$DIR/MANIFEST" | grep -qx "# apq-pretrained $MANIFEST_VERSION" ||
        die "$DIR/MANIFEST: not an apq-pretrained $MANIFEST_VERSION manifest; retraining"
    keys
    local ok="" name want
    for name in $ARTIFACTS; do
        case $name in
        supernet.h5) want=$K_SN ;;
        predictor-fp32.h5) want=$K_FP ;;
        *) want=$K_Q ;;
        esac
        if [ -z "$(field "$name" 3)" ]; then
            echo "pretrained: $DIR ships no $name; making it here" >&2
            break
        fi
        if [ "$(field "$name" 3)" != "$want" ]; then
            echo "pretrained: $DIR/$name was made with other settings (space, profile section, seed, schedule or data); making it here" >&2
            break
        fi
        if [ ! -f "$DIR/$name" ] || [ "$(sha "$DIR/$name")" != "$(field "$name" 2)" ]; then
            echo "pretrained: $DIR/$name is missing or fails its checksum (MANIFEST); making it here" >&2
            break
        fi
        ok="$ok $name"
    done
    echo "$ok"
}

fetch() {
    local name=$1 dest=$2
    [ "$(sha "$DIR/$name")" = "$(field "$name" 2)" ] ||
        die "$DIR/$name: fails its checksum in $DIR/MANIFEST; rerun with RETRAIN=1 or restore the file (git checkout $DIR)"
    mkdir -p "$(dirname "$dest")"
    cp "$DIR/$name" "$dest.tmp" && mv -f "$dest.tmp" "$dest"
    echo "pretrained: $dest is the shipped $DIR/$name (its settings match; RETRAIN=1 makes it here)" >&2
}

pack() {
    local run=$1 only=${2:-} name tmp shipped=""
    [ -f "$run/supernet.h5" ] || die "$run/supernet.h5: no such file; run the pipeline first (make PROFILE=...)"
    for name in $ARTIFACTS; do # the chain as far as this run has made it
        [ -f "$run/$name" ] || break
        shipped="$shipped $name"
        [ "$only" = supernet ] && break
    done
    mkdir -p "$DIR"
    for name in $ARTIFACTS; do rm -f "$DIR/$name"; done
    for name in $shipped; do cp "$run/$name" "$DIR/$name.tmp" && mv -f "$DIR/$name.tmp" "$DIR/$name"; done
    tmp=$DIR/MANIFEST.tmp
    echo "# apq-pretrained $MANIFEST_VERSION" > "$tmp"
    echo "supernet.h5 $(sha "$DIR/supernet.h5") $(key_supernet)" >> "$tmp"
    mv -f "$tmp" "$DIR/MANIFEST" # the fp32 key needs the supernet's checksum from it
    if [ -f "$DIR/predictor-fp32.h5" ]; then
        keys
        echo "predictor-fp32.h5 $(sha "$DIR/predictor-fp32.h5") $K_FP" >> "$DIR/MANIFEST"
    fi
    if [ -f "$DIR/predictor-quant.h5" ]; then
        keys
        echo "predictor-quant.h5 $(sha "$DIR/predictor-quant.h5") $K_Q" >> "$DIR/MANIFEST"
    fi
    (cd "$DIR" && sha256sum $shipped > SHA256SUMS.tmp && mv -f SHA256SUMS.tmp SHA256SUMS)
    echo "pretrained: packed$shipped of $run into $DIR (MANIFEST, SHA256SUMS)" >&2
}

[ $# -ge 2 ] || die "usage: pretrained.sh plan DIR | fetch DIR NAME DEST | pack DIR RUN"
cmd=$1
DIR=${2%/}
DATA_FILES=${DATA_FILES:-}
if [ "$cmd" != fetch ]; then : "${SPACE:?}" "${PROF:?}" "${SEED:?}"; fi
case $cmd in
plan) plan ;;
fetch) [ $# -eq 4 ] || die "usage: pretrained.sh fetch DIR NAME DEST"; fetch "$3" "$4" ;;
pack) [ $# -ge 3 ] || die "usage: pretrained.sh pack DIR RUN [supernet]"; pack "$3" "${4:-}" ;;
*) die "unknown command '$cmd'" ;;
esac
