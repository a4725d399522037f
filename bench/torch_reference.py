#!/usr/bin/python3
"""torch_reference.py — apq's elastic supernet rebuilt in PyTorch from supernet.h5.

The network exactly as docs/formats.md §7 describes it (and supernet/forward.c
computes it), from the file's tensors by their documented names, PyTorch
order (OIHW, [out, in]). A subnet is an arch string (docs/formats.md §6,
fp32 only). Used by bench/make_goldens.py (the golden data of
tests/test_golden.c) and by `make bench` (the PyTorch side of the speed table).

  /usr/bin/python3 bench/torch_reference.py --supernet S.h5 --arch ARCH [--eval] [--images N]
      print the logits of the first N test images (BN in training mode
      unless --eval: batch statistics, as apq's SN_TRAIN forward)
  /usr/bin/python3 bench/torch_reference.py --bench --apq build/apq-bench --rounds 3 --out DIR/torch.csv
      training and inference images/s of apq-bench's cases, taking turns with
      apq-bench --serve case by case (make bench): DIR/torch.csv holds both
      sides' images/s per round, DIR/cases.csv the cases

Run it with Debian's interpreter (/usr/bin/python3): python3-torch and
python3-h5py are Debian packages that another python3 does not see.
"""
import argparse
import configparser
import csv
import gzip
import os
import sys
import time

import h5py
import numpy as np
import torch
import torch.nn.functional as F

from apq_serve import ApqServer

BN_EPS = 1e-5
FMNIST_MEAN = np.float32(0.2860)
FMNIST_STD = np.float32(0.3530)
DATA_DIR = "/usr/share/datasets/fashion-mnist"


# ---- search space and arch text ------------------------------------------------


def _ints(text):
    return [int(v) for v in text.split(",")]


class Space:
    """The parts of a space .ini (docs/formats.md §3) the network needs."""

    def __init__(self, ini_text):
        cp = configparser.ConfigParser(comment_prefixes=(";", "#"), inline_comment_prefixes=(";",))
        cp.read_string(ini_text)
        sp, st = cp["space"], cp["stem"]
        self.name = sp["name"].strip()
        self.in_ch, self.in_size = int(sp["input_channels"]), int(sp["input_size"])
        self.classes = int(sp["classes"])
        self.resolutions, self.kernels = _ints(sp["resolutions"]), _ints(sp["kernels"])
        self.ratio_min, self.ratio_max = int(sp["mid_ratio_min"]), int(sp["mid_ratio_max"])
        self.mid_step = int(sp["mid_step"])
        self.first_conv, self.first_conv_k = int(st["first_conv"]), int(st["first_conv_kernel"])
        self.first_block, self.feature_mix = int(st["first_block"]), int(st["feature_mix"])
        self.stages = []  # (width, stride, min_depth, max_depth)
        i = 1
        while f"stage{i}" in cp:
            s = cp[f"stage{i}"]
            d = _ints(s["depth"])
            self.stages.append((int(s["width"]), int(s["stride"]), d[0], d[-1]))
            i += 1
        # blocks[s][b]: cin, cout, stride, residual, mid_max, tensor prefix
        self.blocks, cin = [], self.first_block
        for s, (width, stride, _, dmax) in enumerate(self.stages):
            row = []
            for b in range(dmax):
                st_b = stride if b == 0 else 1
                row.append(dict(cin=cin, cout=width, stride=st_b, residual=st_b == 1 and cin == width,
                                mid_min=self.ratio_min * cin, mid_max=self.ratio_max * cin,
                                prefix=f"stage{s + 1}/block{b}"))
                cin = width
            self.blocks.append(row)


class Arch:
    """res and, per stage, the active blocks as (kernel, mid)."""

    def __init__(self, space, text):
        self.text = text
        parts = text.split("_")
        if not parts[0].startswith("r") or len(parts) != len(space.stages) + 1:
            raise ValueError(f"bad arch '{text}': expected r<res> and {len(space.stages)} stages")
        self.res = int(parts[0][1:])
        if self.res not in space.resolutions:
            raise ValueError(f"bad arch '{text}': resolution {self.res} not in the space")
        self.stages = []
        for s, group in enumerate(parts[1:]):
            blocks = []
            for b, blk in enumerate(group.split(".")):
                if "q" in blk:
                    raise ValueError(f"bad arch '{text}': quantized archs are not modelled here")
                if not blk.startswith("k") or "m" not in blk:
                    raise ValueError(f"bad arch '{text}': block '{blk}'")
                k, mid = (int(v) for v in blk[1:].split("m"))
                sb = space.blocks[s][b] if b < len(space.blocks[s]) else None
                if sb is None or k not in space.kernels or not sb["mid_min"] <= mid <= sb["mid_max"]:
                    raise ValueError(f"bad arch '{text}': block '{blk}' outside the space")
                blocks.append((k, mid))
            if not space.stages[s][2] <= len(blocks) <= space.stages[s][3]:
                raise ValueError(f"bad arch '{text}': depth of stage {s + 1}")
            self.stages.append(blocks)


def largest_arch(space):
    groups = [".".join(f"k{space.kernels[-1]}m{b['mid_max']}" for b in row) for row in space.blocks]
    return "_".join([f"r{space.resolutions[-1]}"] + groups)


def smallest_arch(space):
    groups = []
    for (_, _, dmin, _), row in zip(space.stages, space.blocks):
        groups.append(".".join(f"k{space.kernels[0]}m{b['mid_min']}" for b in row[:dmin]))
    return "_".join([f"r{space.resolutions[0]}"] + groups)


def random_arch(space, rng, res=None):
    """Uniform over depth, kernel and mid grid (numpy Generator rng)."""
    groups = []
    for (_, _, dmin, dmax), row in zip(space.stages, space.blocks):
        d = int(rng.integers(dmin, dmax + 1))
        blocks = []
        for b in row[:d]:
            k = int(rng.choice(space.kernels))
            mid = int(rng.choice(np.arange(b["mid_min"], b["mid_max"] + 1, space.mid_step)))
            blocks.append(f"k{k}m{mid}")
        groups.append(".".join(blocks))
    r = res if res is not None else int(rng.choice(space.resolutions))
    return "_".join([f"r{r}"] + groups)


# ---- the supernet ----------------------------------------------------------------


class Supernet:
    """Tensors of a supernet.h5 by name (params with gradients, BN running stats as buffers)."""

    def __init__(self, path, dtype=torch.float32, space_ini=None):
        self.act_trace = None  # see _act
        self._last_bn = None
        with h5py.File(path, "r") as f:
            fmt = f.attrs["format"]
            fmt = fmt.decode() if isinstance(fmt, bytes) else str(fmt)
            if fmt != "supernet" or int(f.attrs["format_version"]) != 1:
                raise ValueError(f"{path}: not a supernet.h5 of format_version 1")
            text = f.attrs["space"]
            text = text.decode() if isinstance(text, bytes) else str(text)
            if space_ini:
                with open(space_ini) as g:
                    text = g.read()
            self.space = Space(text)
            self.params, self.buffers = {}, {}
            names = []
            f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
            for n in names:
                t = torch.from_numpy(np.asarray(f[n][()], dtype=np.float32)).to(dtype)
                if n.endswith("running_mean") or n.endswith("running_var"):
                    self.buffers[n] = t
                else:
                    self.params[n] = t.requires_grad_(True)
        self._check_shapes()

    def _check_shapes(self):
        sp, K = self.space, self.space.kernels[-1]
        want = {"first_conv/weight": (sp.first_conv, sp.in_ch, sp.first_conv_k, sp.first_conv_k),
                "first_block/depthwise/weight": (sp.first_conv, 1, 3, 3),
                "first_block/pointwise/weight": (sp.first_block, sp.first_conv, 1, 1),
                "feature_mix/weight": (sp.feature_mix, sp.stages[-1][0], 1, 1),
                "classifier/weight": (sp.classes, sp.feature_mix)}
        for row in sp.blocks:
            for b in row:
                p = b["prefix"]
                want[f"{p}/expand/weight"] = (b["mid_max"], b["cin"], 1, 1)
                want[f"{p}/depthwise/weight"] = (b["mid_max"], 1, K, K)
                want[f"{p}/project/weight"] = (b["cout"], b["mid_max"], 1, 1)
        for n, shape in want.items():
            if n not in self.params:
                raise ValueError(f"supernet.h5: missing dataset '{n}'")
            if tuple(self.params[n].shape) != shape:
                raise ValueError(f"supernet.h5: dataset '{n}' has shape {list(self.params[n].shape)}, "
                                 f"expected {list(shape)}")

    def named_parameters(self):
        return list(self.params.items())

    def _act(self, h):
        """ReLU6; when self.act_trace is a list, appends (BN prefix, input): a
        gradient reference is only trustworthy where float32 rounding cannot move
        an input across a kink at 0 or 6 (bench/make_goldens.py checks them)."""
        if self.act_trace is not None:  # (BN prefix, its output) of every ReLU6, in order
            self.act_trace.append((self._last_bn, h.detach()))
        return F.relu6(h)

    # -- layers --

    def _bn(self, x, prefix, c, train):
        P, B = self.params, self.buffers
        w, b = P[f"{prefix}/bn/weight"][:c], P[f"{prefix}/bn/bias"][:c]
        self._last_bn = prefix
        if train:  # batch statistics, biased variance; running stats untouched (as apq)
            return F.batch_norm(x, None, None, w, b, training=True, eps=BN_EPS)
        return F.batch_norm(x, B[f"{prefix}/bn/running_mean"][:c], B[f"{prefix}/bn/running_var"][:c],
                            w, b, training=False, eps=BN_EPS)

    def dw_kernel(self, prefix, k, mid):
        """The k x k kernel [mid,1,k,k]: the max kernel, or the chain of centre crops
        through transform_<a>to<b> (out = M . vec(crop), row-major taps)."""
        ks = self.space.kernels
        w = self.params[f"{prefix}/depthwise/weight"][:mid]
        for j in range(len(ks) - 2, ks.index(k) - 1, -1):
            kb, kk = ks[j + 1], ks[j]
            off = (kb - kk) // 2
            crop = w[:, :, off:off + kk, off:off + kk].reshape(mid, kk * kk)
            T = self.params[f"{prefix}/depthwise/transform_{kb}to{kk}"]
            w = (crop @ T.t()).reshape(mid, 1, kk, kk)
        return w

    # -- network --

    def input(self, images, res):
        """images [N,1,H,W] normalised -> the arch's resolution (bilinear, half-pixel)."""
        if images.shape[-1] == res and images.shape[-2] == res:
            return images
        return F.interpolate(images, size=(res, res), mode="bilinear", align_corners=False)

    def forward(self, images, arch, train=True):
        """Logits [N, classes] of subnet `arch` (Arch or text) on normalised images [N,1,H,W]."""
        sp, P = self.space, self.params
        if isinstance(arch, str):
            arch = Arch(sp, arch)
        x = self.input(images, arch.res)
        c0, c1 = sp.first_conv, sp.first_block
        h = F.conv2d(x, P["first_conv/weight"], padding=sp.first_conv_k // 2)
        h = self._act(self._bn(h, "first_conv", c0, train))
        skip = h
        h = F.conv2d(h, P["first_block/depthwise/weight"], padding=1, groups=c0)
        h = self._act(self._bn(h, "first_block/depthwise", c0, train))
        h = F.conv2d(h, P["first_block/pointwise/weight"])
        h = self._bn(h, "first_block/pointwise", c1, train)
        if c0 == c1:
            h = h + skip
        for s, blocks in enumerate(arch.stages):
            for b, (k, mid) in enumerate(blocks):
                sb = sp.blocks[s][b]
                p, x_in = sb["prefix"], h
                h = F.conv2d(h, P[f"{p}/expand/weight"][:mid])
                h = self._act(self._bn(h, f"{p}/expand", mid, train))
                h = F.conv2d(h, self.dw_kernel(p, k, mid), stride=sb["stride"], padding=k // 2, groups=mid)
                h = self._act(self._bn(h, f"{p}/depthwise", mid, train))
                h = F.conv2d(h, P[f"{p}/project/weight"][:, :mid])
                h = self._bn(h, f"{p}/project", sb["cout"], train)
                if sb["residual"]:
                    h = h + x_in
        h = F.conv2d(h, P["feature_mix/weight"])
        h = self._act(self._bn(h, "feature_mix", sp.feature_mix, train))
        h = h.mean(dim=(2, 3))
        return F.linear(h, P["classifier/weight"], P["classifier/bias"])

    def used_slices(self, name, arch):
        """The part of tensor `name` that subnet `arch` reads: a tuple of slices
        (all of it for fixed layers), or None when the subnet does not use it."""
        if isinstance(arch, str):
            arch = Arch(self.space, arch)
        if not name.startswith("stage"):
            return (slice(None),)
        stage, block = name.split("/")[:2]
        s, b = int(stage[5:]) - 1, int(block[5:])
        if b >= len(arch.stages[s]):
            return None
        k, mid = arch.stages[s][b]
        rest = name.split("/", 2)[2]
        if rest.startswith("project/bn/"):
            return (slice(None),)
        if rest == "project/weight":
            return (slice(None), slice(0, mid))
        if rest.startswith("depthwise/transform_"):
            a, c = (int(v) for v in rest.split("_")[1].split("to"))
            ks = self.space.kernels
            return (slice(None),) if ks.index(k) <= ks.index(c) else None
        return (slice(0, mid),)  # expand, depthwise weight and their BN


# ---- data ---------------------------------------------------------------------------


def load_images(split="t10k", n=16, data_dir=DATA_DIR):
    """First n images of an IDX split, normalised as apq does ((x/255 - mean)/std in
    float32), as [n,1,H,W] float32, and their labels (int64)."""
    with gzip.open(os.path.join(data_dir, f"{split}-images-idx3-ubyte.gz")) as f:
        raw = f.read()
    if int.from_bytes(raw[0:4], "big") != 0x803:
        raise ValueError(f"{split}-images: bad IDX magic")
    h, w = int.from_bytes(raw[8:12], "big"), int.from_bytes(raw[12:16], "big")
    px = np.frombuffer(raw, dtype=np.uint8, count=n * h * w, offset=16).reshape(n, 1, h, w)
    with gzip.open(os.path.join(data_dir, f"{split}-labels-idx1-ubyte.gz")) as f:
        lab = np.frombuffer(f.read(), dtype=np.uint8, count=n, offset=8)
    lut = (np.arange(256, dtype=np.float32) / np.float32(255.0) - FMNIST_MEAN) / FMNIST_STD
    return lut[px].astype(np.float32), lab.astype(np.int64)


# ---- benchmark -----------------------------------------------------------------------


def _timed(step, seconds, warmup=2, min_iters=3):
    for _ in range(warmup):
        step()
    n, t0 = 0, time.perf_counter()
    while True:
        step()
        n += 1
        dt = time.perf_counter() - t0
        if n >= min_iters and dt >= seconds:
            return n, dt


def bench(args):
    """Each case in NCHW and in channels_last (PyTorch's two CPU layouts; which
    one its oneDNN kernels prefer depends on the layer), timed in the faster one
    after a one-step trial of both. apq-bench --serve (--apq) runs beside this
    process and the two take turns: per round and case, one times the case
    and then the other (apq first in odd rounds, PyTorch first in even ones), so
    that both sides of a ratio see the same machine speed."""
    torch.set_num_threads(args.threads)
    out_dir = os.path.dirname(args.out) or "."
    apq = ApqServer(args.apq, out_dir, args.seconds, args.threads, "torch_reference.py")
    net = Supernet(os.path.join(out_dir, "bench-supernet.h5"))
    x_np, y_np = load_images("train", args.batch, args.data)
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)
    layouts = {"nchw": x, "channels_last": x.contiguous(memory_format=torch.channels_last)}
    if args.layout != "best":
        layouts = {args.layout: layouts[args.layout]}
    decay = [p for n, p in net.params.items() if "/bn/" not in n and not n.endswith("bias")]
    no_decay = [p for n, p in net.params.items() if "/bn/" in n or n.endswith("bias")]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": 4e-5}, {"params": no_decay, "weight_decay": 0}],
                          lr=1e-3, momentum=0.9, nesterov=True)

    def make_step(case, arch, xin):
        if case.startswith("train"):
            def step():
                opt.zero_grad(set_to_none=True)
                loss = F.cross_entropy(net.forward(xin, arch, train=True), y, label_smoothing=0.1)
                loss.backward()
                opt.step()
        else:
            def step():
                with torch.inference_mode():
                    net.forward(xin, arch, train=False)
        return step

    def time_torch(case, arch):
        trial = {}
        for name, xin in layouts.items():
            n, dt = _timed(make_step(case, arch, xin), 0, warmup=1, min_iters=1)
            trial[name] = dt / n
        layout = min(trial, key=trial.get)
        n, dt = _timed(make_step(case, arch, layouts[layout]), args.seconds)
        return n * args.batch / dt, dt, n, layout

    rows = []  # round, case, arch, torch images/s, seconds, iters, layout, apq images/s
    for r in range(1, args.rounds + 1):
        for case, arch_text, _ in apq.cases:
            arch = Arch(net.space, arch_text)
            if r % 2 == 1:  # apq first in odd rounds, PyTorch first in even ones
                ia = apq.run(case)
                ips, dt, n, layout = time_torch(case, arch)
            else:
                ips, dt, n, layout = time_torch(case, arch)
                ia = apq.run(case)
            print(f"round {r} {case}: torch {ips:.1f} images/s ({layout}), apq {ia:.1f} images/s, "
                  f"ratio {ia / ips:.2f}", file=sys.stderr)
            rows.append((r, case, arch_text, ips, dt, n, layout, ia))
    apq.close()
    tmp = args.out + ".tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["round", "case", "arch", "images_per_s", "seconds", "iters", "layout", "threads",
                    "torch_version", "apq_images_per_s"])
        for r, case, a, ips, dt, n, layout, ia in rows:
            w.writerow([r, case, a, f"{ips:.6g}", f"{dt:.6g}", n, layout, args.threads, torch.__version__,
                        f"{ia:.6g}"])
    os.replace(tmp, args.out)
    tmp = os.path.join(out_dir, "cases.csv")
    with open(tmp + ".tmp", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["case", "arch", "macs"])
        for c in apq.cases:
            w.writerow([c[0], c[1], f"{c[2]:.0f}"])
    os.replace(tmp + ".tmp", tmp)


# ---- command line -------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--supernet", help="supernet.h5 (--bench: OUT's folder/bench-supernet.h5)")
    ap.add_argument("--space", help="space .ini (default: the text stored in supernet.h5)")
    ap.add_argument("--arch", help="arch text (docs/formats.md §6)")
    ap.add_argument("--eval", action="store_true", help="BN with the file's running statistics")
    ap.add_argument("--images", type=int, default=16, help="first N test images")
    ap.add_argument("--data", default=DATA_DIR, help="folder of the IDX files")
    ap.add_argument("--double", action="store_true", help="compute in float64")
    ap.add_argument("--bench", action="store_true", help="speed: training and inference images/s")
    ap.add_argument("--apq", help="--bench: apq-bench binary to take turns with")
    ap.add_argument("--rounds", type=int, default=1, help="--bench: rounds over all cases")
    ap.add_argument("--out", help="--bench: output CSV")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--seconds", type=float, default=4.0, help="--bench: timed seconds per case")
    ap.add_argument("--layout", choices=("best", "nchw", "channels_last"), default="best",
                    help="--bench: activation memory format (best: the faster after a trial step)")
    args = ap.parse_args()
    if args.bench:
        if not args.apq or not args.out or args.rounds < 1:
            ap.error("--bench needs --apq, --out and --rounds >= 1")
        bench(args)
        return
    if not args.arch or not args.supernet:
        ap.error("give --supernet and --arch (or --bench)")
    dtype = torch.float64 if args.double else torch.float32
    net = Supernet(args.supernet, dtype, args.space)
    x, _ = load_images("t10k", args.images, args.data)
    with torch.no_grad():
        logits = net.forward(torch.from_numpy(x).to(dtype), args.arch, train=not args.eval)
    np.savetxt(sys.stdout, logits.numpy(), fmt="%.9g")


if __name__ == "__main__":
    main()
