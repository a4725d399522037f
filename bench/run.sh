#!/usr/bin/env bash
# run.sh — `make bench`: apq, then PyTorch, on the same subnets, batch and thread count.
#
#   bash bench/run.sh [APQ_BENCH_BINARY]        (default build/apq-bench)
#   THREADS=2 BENCH_SECONDS=4                   (environment, defaults shown)
#
# 1. build/apq-bench: images/s of training and inference for the largest, the
#    smallest and a fixed random subnet at resolution 28, the sgemm peak, peak
#    RSS -> bench/out/apq.csv, apq.env, bench-supernet.h5;
# 2. bench/torch_reference.py --bench: the same cases (arch strings from
#    apq.csv, weights from bench-supernet.h5) in PyTorch -> bench/out/torch.csv;
# 3. join by case -> bench/out/results.csv (case,apq,torch,ratio; images/s)
#    and bench/results.md (the table, GFLOP/s and fraction of the sgemm peak,
#    OpenBLAS kernel, peak RSS, date, git rev, thread count).
# PyTorch runs on Debian's /usr/bin/python3 (python3-torch, python3-h5py),
# with the OpenBLAS kernel apq chose unless OPENBLAS_CORETYPE is set.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/apq-bench}
THREADS=${THREADS:-2}
SECS=${BENCH_SECONDS:-4}
OUT=bench/out
PY=/usr/bin/python3
mkdir -p "$OUT"
[ -x "$BIN" ] || { echo "bench/run.sh: $BIN missing; run: make $BIN" >&2; exit 1; }
"$PY" -c 'import torch, h5py' 2>/dev/null || {
    echo "bench/run.sh: $PY cannot import torch and h5py; run: EXTRA_PKGS=\"python3-torch python3-h5py\" bash scripts/deps.sh" >&2
    exit 1; }

echo "bench: apq ($THREADS threads)" >&2
APQ_THREADS=$THREADS "$BIN" --out "$OUT" --seconds "$SECS"

core=$(sed -n 's/^openblas_coretype=//p' "$OUT/apq.env")
if [ -z "${OPENBLAS_CORETYPE:-}" ] && [ -n "$core" ] && [ "$core" != unset ]; then
    export OPENBLAS_CORETYPE=$core
fi
echo "bench: PyTorch ($THREADS threads, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset})" >&2
OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS "$PY" bench/torch_reference.py --bench \
    --supernet "$OUT/bench-supernet.h5" --cases "$OUT/apq.csv" --out "$OUT/torch.csv" \
    --threads "$THREADS" --seconds "$SECS"

"$PY" - "$OUT" "$THREADS" <<'EOF'
import csv, datetime, os, platform, sys
out, threads = sys.argv[1], int(sys.argv[2])
env = dict(l.strip().split("=", 1) for l in open(f"{out}/apq.env") if "=" in l)
apq = {r["case"]: r for r in csv.DictReader(open(f"{out}/apq.csv"))}
tor = {r["case"]: r for r in csv.DictReader(open(f"{out}/torch.csv"))}
cases = ["train-largest", "train-smallest", "train-random", "infer-largest", "infer-smallest", "infer-random"]
peak = float(env["sgemm_peak_gflops"])
rows = []
for c in cases:
    a, t = apq[c], tor[c]
    ia, it = float(a["images_per_s"]), float(t["images_per_s"])
    flop = float(a["macs"]) * 2 * (3 if c.startswith("train") else 1)
    rows.append(dict(case=c, arch=a["arch"], macs=float(a["macs"]), apq=ia, torch=it, ratio=ia / it,
                     gf_apq=flop * ia / 1e9, gf_torch=flop * it / 1e9, layout=t["layout"]))
with open(f"{out}/results.csv.tmp", "w", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["case", "apq", "torch", "ratio"])
    for r in rows:
        w.writerow([r["case"], f"{r['apq']:.1f}", f"{r['torch']:.1f}", f"{r['ratio']:.3f}"])
os.replace(f"{out}/results.csv.tmp", f"{out}/results.csv")

cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
L = ["# apq vs PyTorch: speed", "",
     f"Written by `make bench` (bench/run.sh) on {now}, git rev `{env['git_rev']}`.", "",
     f"- machine: {cpu}, {os.cpu_count()} CPUs; **{threads} threads** for each side "
     f"(apq: APQ_THREADS; PyTorch: torch.set_num_threads)",
     f"- OpenBLAS kernel: **{env['openblas_core']}** (OPENBLAS_CORETYPE={env['openblas_coretype']}; "
     "PyTorch ran with the same setting)",
     f"- sgemm peak: **{peak:.1f} GFLOP/s** (cblas_sgemm {env['sgemm_n']}³, {threads} OpenBLAS threads, best of 5)",
     f"- PyTorch {tor[cases[0]]['torch_version']} (Debian python3-torch, oneDNN), fp32, the supernet "
     "rebuilt by bench/torch_reference.py (elastic slices and kernel transforms in the graph, as apq); "
     "per case the faster of its NCHW and channels_last layouts after a trial step (column *layout*)",
     "- batch 128, resolution 28, fp32; training = forward (BN batch statistics) + label-smoothed CE + "
     "backward + SGD-Nesterov update; inference = forward with BN running statistics",
     f"- GFLOP/s = MACs × 2 × (3 training, 1 inference) × images/s; % = fraction of the sgemm peak",
     f"- peak RSS of apq's process after the training cases: **{float(env['peak_rss_mb_training']):.0f} MB** "
     f"({float(env['peak_rss_mb_before_training']):.0f} MB before them: the loaded dataset and the supernet)",
     ""]
table = len(L)
L += ["| case | apq images/s | PyTorch images/s | ratio | floor | apq GFLOP/s | apq % peak | "
      "PyTorch GFLOP/s | PyTorch % peak | layout | MMACs/image |",
      "|---|---:|---:|---:|---|---:|---:|---:|---:|---|---:|"]
for r in rows:
    floor = 3.0 if r["case"].startswith("train") else 1.5
    met = "met" if r["ratio"] >= floor else "**not met**"
    L.append(f"| {r['case']} | {r['apq']:.1f} | {r['torch']:.1f} | {r['ratio']:.2f}× | ≥ {floor:g}×: {met} | "
             f"{r['gf_apq']:.2f} | {100 * r['gf_apq'] / peak:.1f}% | {r['gf_torch']:.2f} | "
             f"{100 * r['gf_torch'] / peak:.1f}% | {r['layout']} | {r['macs'] / 1e6:.2f} |")
L += ["", "Subnets (docs/formats.md §6):", ""]
for c in ("largest", "smallest", "random"):
    L.append(f"- {c}: `{apq['train-' + c]['arch']}`")
L += ["", "Raw numbers: bench/out/apq.csv, bench/out/torch.csv, bench/out/apq.env; joined: bench/out/results.csv.", ""]
with open("bench/results.md.tmp", "w") as f:
    f.write("\n".join(L))
os.replace("bench/results.md.tmp", "bench/results.md")
print("\n".join(L[table:table + 2 + len(rows)]), file=sys.stderr)
EOF
echo "bench: wrote $OUT/results.csv and bench/results.md" >&2
