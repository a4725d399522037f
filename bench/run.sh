#!/usr/bin/env bash
# run.sh — `make bench`: apq and PyTorch, taking turns, on the same subnets, batch and threads.
#
#   bash bench/run.sh [APQ_BENCH [APQ_BENCH_SAMPLING [APQ_BENCH_EXPORT]]]
#       (default build/apq-bench build/apq-bench-sampling build/apq-bench-export)
#   THREADS=2 BENCH_SECONDS=3 BENCH_ROUNDS=3 SAMPLING_COUNT=16  (environment, defaults shown)
#
# 1. bench/torch_reference.py --bench --apq BIN starts BIN --serve beside
#    itself (one process pair) and, round by round and case by case, times the
#    case in apq and then in PyTorch (PyTorch first in even rounds): images/s
#    of training and inference for the largest, the smallest and a fixed
#    random subnet at resolution 28 -> bench/out/torch.csv (both sides, every
#    round), cases.csv, apq.env (sgemm peak, peak RSS), bench-supernet.h5;
# 2. per case, the median over rounds of each side and of the per-round
#    ratio -> bench/out/results.csv (case,apq,torch,ratio; images/s) and
#    bench/results.md (the table with the ratio's range over rounds, GFLOP/s
#    and fraction of the sgemm peak, OpenBLAS kernel, peak RSS, date, git
#    rev, thread count).
# The machine's speed drifts by up to 30% within minutes; taking turns puts
# both sides of each ratio on the same machine, and the median drops outliers.
# PyTorch runs on Debian's /usr/bin/python3 (python3-torch, python3-h5py),
# with the OpenBLAS kernel apq chooses (DESIGN.md §8) unless OPENBLAS_CORETYPE is set.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/apq-bench}
SBIN=${2:-build/apq-bench-sampling}
EBIN=${3:-build/apq-bench-export}
SAMPLING_COUNT=${SAMPLING_COUNT:-16}
THREADS=${THREADS:-2}
SECS=${BENCH_SECONDS:-3}
ROUNDS=${BENCH_ROUNDS:-3}
OUT=bench/out
PY=/usr/bin/python3
mkdir -p "$OUT"
[ -x "$BIN" ] || { echo "bench/run.sh: $BIN missing; run: make $BIN" >&2; exit 1; }
"$PY" -c 'import torch, h5py' 2>/dev/null || {
    echo "bench/run.sh: $PY cannot import torch and h5py; run: EXTRA_PKGS=\"python3-torch python3-h5py\" bash scripts/deps.sh" >&2
    exit 1; }

# the kernel apq_runtime_init chooses (util/util.c), set before either library loads
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
    if grep -qw avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX
    elif grep -qw avx2 /proc/cpuinfo; then export OPENBLAS_CORETYPE=Haswell; fi
fi
echo "bench: apq and PyTorch taking turns, $ROUNDS rounds, $THREADS threads each, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}" >&2
rm -f "$OUT/apq.csv"
OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS "$PY" bench/torch_reference.py --bench \
    --apq "$BIN" --out "$OUT/torch.csv" --threads "$THREADS" --seconds "$SECS" --rounds "$ROUNDS"

# 3. the sampling stages' throughput (issue 14): random subnets, the quick
#    profile's [measure] recipe, the whole val split; the quick supernet's
#    weights when there is one (throughput does not depend on them)
SN=runs/quick/supernet.h5
echo "bench: sampling throughput, $SAMPLING_COUNT fp32 and $SAMPLING_COUNT quantized samples, $THREADS threads" >&2
APQ_THREADS=$THREADS "$SBIN" --out "$OUT" --count "$SAMPLING_COUNT" $([ -f "$SN" ] && echo --supernet "$SN")
# and as make runs them: $THREADS processes of one thread each at once (SHARDS);
# the throughput is their sum
echo "bench: sampling throughput, $THREADS processes of 1 thread at once" >&2
for k in $(seq 1 "$THREADS"); do
    mkdir -p "$OUT/shard$k"
    APQ_THREADS=1 "$SBIN" --out "$OUT/shard$k" --count "$SAMPLING_COUNT" \
        $([ -f "$SN" ] && echo --supernet "$SN") 2> "$OUT/shard$k/log" &
done
wait

# 4. integer inference (issue 15): the exported model.c compiled with cc, the
#    library's integer kernels and apq's fp32 forward, batch 1, one thread
echo "bench: integer inference, batch 1, 1 thread" >&2
APQ_THREADS=1 "$EBIN" --out "$OUT" >&2

"$PY" - "$OUT" "$THREADS" <<'EOF'
import csv, datetime, os, platform, statistics, sys
out, threads = sys.argv[1], int(sys.argv[2])
env = dict(l.strip().split("=", 1) for l in open(f"{out}/apq.env") if "=" in l)
apq = {r["case"]: r for r in csv.DictReader(open(f"{out}/cases.csv"))}
runs = list(csv.DictReader(open(f"{out}/torch.csv")))
tor = {r["case"]: r for r in runs}
rounds = max(int(r["round"]) for r in runs)
cases = ["train-largest", "train-smallest", "train-random", "infer-largest", "infer-smallest", "infer-random"]
peak = float(env["sgemm_peak_gflops"])
rows = []
for c in cases:
    mine = [r for r in runs if r["case"] == c]
    ia = statistics.median(float(r["apq_images_per_s"]) for r in mine)
    it = statistics.median(float(r["images_per_s"]) for r in mine)
    ratios = [float(r["apq_images_per_s"]) / float(r["images_per_s"]) for r in mine]
    flop = float(apq[c]["macs"]) * 2 * (3 if c.startswith("train") else 1)
    layouts = sorted(set(r["layout"] for r in mine))
    rows.append(dict(case=c, arch=apq[c]["arch"], macs=float(apq[c]["macs"]), apq=ia, torch=it,
                     ratio=statistics.median(ratios), lo=min(ratios), hi=max(ratios),
                     gf_apq=flop * ia / 1e9, gf_torch=flop * it / 1e9, layout="/".join(layouts)))
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
     f"- **{rounds} rounds**, apq and PyTorch taking turns per case (one process pair: "
     "apq-bench --serve beside torch_reference.py); images/s are each side's median over rounds, "
     "the ratio the median of the per-round ratios, with their range",
     "- batch 128, resolution 28, fp32; training = forward (BN batch statistics) + label-smoothed CE + "
     "backward + SGD-Nesterov update; inference = forward with BN running statistics",
     f"- GFLOP/s = MACs × 2 × (3 training, 1 inference) × images/s; % = fraction of the sgemm peak",
     f"- peak RSS of apq's process after the training cases: **{float(env['peak_rss_mb_training']):.0f} MB** "
     f"({float(env['peak_rss_mb_before_training']):.0f} MB before them: the loaded dataset and the supernet)",
     ""]
table = len(L)
L += ["| case | apq images/s | PyTorch images/s | ratio | ratio range | floor | apq GFLOP/s | apq % peak | "
      "PyTorch GFLOP/s | PyTorch % peak | layout | MMACs/image |",
      "|---|---:|---:|---:|---|---|---:|---:|---:|---:|---|---:|"]
for r in rows:
    floor = 3.0 if r["case"].startswith("train") else 1.5
    met = "met" if r["ratio"] >= floor else "**not met**"
    L.append(f"| {r['case']} | {r['apq']:.1f} | {r['torch']:.1f} | {r['ratio']:.2f}× | "
             f"{r['lo']:.2f}–{r['hi']:.2f} | ≥ {floor:g}×: {met} | "
             f"{r['gf_apq']:.2f} | {100 * r['gf_apq'] / peak:.1f}% | {r['gf_torch']:.2f} | "
             f"{100 * r['gf_torch'] / peak:.1f}% | {r['layout']} | {r['macs'] / 1e6:.2f} |")
L += ["", "## Sampling throughput (the predictors' samples)", "",
      "Per sample the work of apq-sample-fp32 / apq-sample-quant (stages/sample.c, "
      "supernet_measure): profiles/quick.ini's [measure] recipe, random subnets of fmnist-mbv2 "
      "drawn as the stages draw them, accuracy on the whole val split; "
      f"apq alone (no PyTorch peer): one process on {threads} threads, and {threads} processes of one "
      "thread at once, as `make` runs the sampling shards (their samples/min summed; s/sample is "
      "per sample of the whole). Floors from issue 14.", "",
      "| stage | samples/min | floor | s/sample | samples | val images | calib images | QAT |",
      "|---|---:|---|---:|---:|---:|---:|---|"]
shards = [list(csv.DictReader(open(f"{out}/shard{k}/sampling.csv"))) for k in range(1, threads + 1)]
for i, r in enumerate(csv.DictReader(open(f"{out}/sampling.csv"))):
    qat = f"{r['qat_steps']} steps x {r['qat_batch']}" if r["kind"] == "quant" else "—"
    floor = 15 if r["kind"] == "fp32" else 6
    for how, spm, n in ((f"1 process, {threads} threads", float(r["samples_per_min"]), int(r["samples"])),
                        (f"{threads} shards of 1 thread (make)", sum(float(s[i]["samples_per_min"]) for s in shards),
                         sum(int(s[i]["samples"]) for s in shards))):
        L.append(f"| sample-{r['kind']}, {how} | {spm:.1f} | ≥ {floor}: {'met' if spm >= floor else '**not met**'} | "
                 f"{60 / spm:.2f} | {n} | {r['val_images']} | {r['calib_images']} | {qat} |")
L += ["", "## Integer inference (issue 15)", "",
      "Images/s at batch 1 and 1 thread (a device runs one image) of bench/bench_export.c's cases: "
      "the largest and the smallest subnet and one random subnet (arch_sample, seed 1), every block "
      "at 8 (int8-) or 4 (int4-) bits (random He-initialised supernet, quantizers calibrated). "
      "*export*: the standalone model.c + main.c of `make export`, "
      "compiled with `cc -std=c11 -O3 -march=native`; *library*: qmodel_run on the fast "
      "kernels (quant/qint.h, plans); *fp32*: apq's supernet_forward. Floor (issue 15): the "
      "8-bit integer model at least as fast as fp32.", "",
      "| case | export | library (fast kernels) | reference kernels | fp32 | floor (8-bit, export / library) | flash B | RAM B |",
      "|---|---:|---:|---:|---:|---|---:|---:|"]
for r in csv.DictReader(open(f"{out}/export.csv")):
    ex, fa, fp = float(r["export"]), float(r["qint_fast"]), float(r["fp32"])
    fl = "—"
    if r["case"].startswith("int8-"):
        fl = f"{'met' if ex >= fp else '**not met**'} / {'met' if fa >= fp else '**not met**'}"
    L.append(f"| {r['case']} | {ex:.0f} | {fa:.0f} | {float(r['qint_ref']):.0f} | {fp:.0f} | {fl} | "
             f"{r['flash_bytes']} | {r['ram_bytes']} |")
L += ["", "Subnets (docs/formats.md §6):", ""]
for c in ("largest", "smallest", "random"):
    L.append(f"- {c}: `{apq['train-' + c]['arch']}`")
L.append(f"- int8-random / int4-random: `{[r for r in csv.DictReader(open(f'{out}/export.csv')) if r['case'] == 'int8-random'][0]['arch']}` (bits as named)")
L += ["", "Raw numbers: bench/out/torch.csv (both sides, every round), bench/out/cases.csv, "
      "bench/out/apq.env; joined: bench/out/results.csv.", ""]
with open("bench/results.md.tmp", "w") as f:
    f.write("\n".join(L))
os.replace("bench/results.md.tmp", "bench/results.md")
print("\n".join(L[table:table + 2 + len(rows)] + [l for l in L if l.startswith("| sample-")]), file=sys.stderr)
EOF
echo "bench: wrote $OUT/results.csv and bench/results.md" >&2
