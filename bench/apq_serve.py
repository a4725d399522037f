"""apq_serve.py — apq-bench --serve (bench/bench.c) as a child process.

Used by bench/torch_reference.py (make bench) and bench/ab.py (two builds
taking turns). The child writes OUT/bench-supernet.h5, names its cases, then
runs one case per request and answers with its images/s.
"""
import os
import subprocess
import sys


class ApqServer:
    """apq-bench --serve as a child process that runs one case per request."""

    def __init__(self, binary, out, seconds, threads, who="apq_serve.py"):
        env = dict(os.environ, APQ_THREADS=str(threads))
        self.who, self.binary = who, binary
        self.p = subprocess.Popen([binary, "--serve", "--out", out, "--seconds", str(seconds)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.cases = []  # (case, arch, macs)
        for line in self.p.stdout:
            if not line.strip():
                break
            case, arch, macs = line.strip().split(",")
            self.cases.append((case, arch, float(macs)))
        if not self.cases:
            sys.exit(f"{who}: {binary} --serve exited before naming its cases")

    def run(self, case, steps=0):
        """Run `case` once: two warm-up steps, then steps for the server's --seconds;
        or, with steps > 0, exactly that many steps and no warm-up. Returns images/s."""
        self.p.stdin.write(f"{case},{steps}\n" if steps > 0 else case + "\n")
        self.p.stdin.flush()
        f = self.p.stdout.readline().strip().split(",")
        if len(f) != 4 or f[0] != case:
            old = " (a build older than 3a5d905 has no 'case,N' turns)" if steps > 0 else ""
            sys.exit(f"{self.who}: {self.binary} --serve gave {f!r} for case {case}{old}")
        return float(f[1])

    def close(self):
        self.p.stdin.close()
        if self.p.wait() != 0:
            sys.exit(f"{self.who}: {self.binary} --serve failed (status {self.p.returncode})")
