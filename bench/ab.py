#!/usr/bin/python3
"""ab.py — two builds of apq-bench taking turns: is B faster than A?

  python3 bench/ab.py BIN_A BIN_B [--case train-smallest] [--rounds 200] [--steps 1] [--threads 2]

Starts BIN_A --serve and BIN_B --serve (bench/bench.c) side by side; only one
runs at a time. Per round each runs --steps steps of the case (no warm-up:
a few unrecorded rounds come first), A first in odd rounds and B first in
even ones, so both see the same machine: its speed drifts by up to 30%
within minutes, and by 10-20% within one, which makes separate runs useless
for a change of a few percent. Turns of one step (about 0.1 s) pair the two
sides closely; each starts with the caches the other left, as an in-process
A/B that alternates steps does. Prints, on stdout, each side's median
images/s and the median of the per-round ratios B/A with a
distribution-free 95% confidence interval for that median (order statistics
of the binomial; Conover, Practical Nonparametric Statistics, §3.2).

Both sides must let idle OpenMP workers sleep (apq's GOMP_SPINCOUNT=5000):
a side whose workers spin while it waits for its turn (OMP_WAIT_POLICY=active)
slows the other side's turn, so wait policies cannot be compared this way.

To compare a revision with the working tree: make ab REV=<rev> (Makefile),
which builds both with this tree's bench/bench.c. Each apq-bench chooses its
OpenBLAS kernel itself (apq_runtime_init, DESIGN.md §8).
"""
import argparse
import math
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from apq_serve import ApqServer  # noqa: E402


def median_ci(xs, level=0.95):
    """The ranks (lo, hi), 0-based, of a distribution-free `level` interval for the median."""
    n = len(xs)
    cdf, k, z = 0.0, 0, (1 - level) / 2
    for i in range(n + 1):  # largest k with P(Bin(n, 1/2) <= k - 1) <= z
        cdf += math.comb(n, i) / 2.0**n
        if cdf > z:
            k = i
            break
    return max(k - 1, 0), min(n - k, n - 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--case", default="train-smallest")
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    for b in (args.a, args.b):
        if not os.access(b, os.X_OK):
            sys.exit(f"ab.py: {b} is not an executable; build it with make build/apq-bench")
    if args.rounds < 6 or args.steps < 1:
        sys.exit("ab.py: need --rounds >= 6 and --steps >= 1")
    with tempfile.TemporaryDirectory() as ta, tempfile.TemporaryDirectory() as tb:
        sa = ApqServer(args.a, ta, 1, args.threads, "ab.py")
        sb = ApqServer(args.b, tb, 1, args.threads, "ab.py")
        if args.case not in [c[0] for c in sa.cases] or args.case not in [c[0] for c in sb.cases]:
            sys.exit(f"ab.py: unknown --case {args.case}; choose from {[c[0] for c in sa.cases]}")
        for _ in range(3):  # warm-up: arenas touched, first-call costs paid
            sa.run(args.case, args.steps)
            sb.run(args.case, args.steps)
        ra, rb = [], []
        for r in range(args.rounds):
            if r % 2 == 0:
                ra.append(sa.run(args.case, args.steps))
                rb.append(sb.run(args.case, args.steps))
            else:
                rb.append(sb.run(args.case, args.steps))
                ra.append(sa.run(args.case, args.steps))
            if (r + 1) % 20 == 0 or r + 1 == args.rounds:
                print(f"ab.py: round {r + 1}/{args.rounds}: A {ra[-1]:.1f}, B {rb[-1]:.1f} images/s",
                      file=sys.stderr)
        sa.close()
        sb.close()
    ratios = sorted(b / a for a, b in zip(ra, rb))
    lo, hi = median_ci(ratios)
    print(f"case,{args.case}\nrounds,{args.rounds}\nsteps_per_turn,{args.steps}")
    print(f"a,{args.a},{statistics.median(ra):.1f}\nb,{args.b},{statistics.median(rb):.1f}")
    print(f"ratio_b_over_a,{statistics.median(ratios):.4f},ci95,{ratios[lo]:.4f},{ratios[hi]:.4f}")


if __name__ == "__main__":
    main()
