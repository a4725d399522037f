#!/usr/bin/python3
"""make_goldens.py — writes tests/golden/torch_reference.h5, PyTorch's answers for
tests/test_golden.c.

  make build/apq-golden-supernet && /usr/bin/python3 bench/make_goldens.py

The supernet is golden_supernet() of tests/golden/golden_supernet.h (written
by build/apq-golden-supernet; the C test rebuilds it in memory, so no weights
are committed). PyTorch (bench/torch_reference.py, float64) computes on the
first 16 Fashion-MNIST test images:
  - logits of 5 subnets (smallest, largest, 3 random at resolutions 20/24/28),
    with BN in training mode (batch statistics) and in eval mode (running stats);
  - the loss (label-smoothed CE 0.1, batch mean) and parameter gradients of one
    small subnet with every kernel size: every tensor it uses, the part it uses,
    PyTorch order; tensors above MAX_FLOATS keep their first rows (dim 0). For
    this subnet some BN biases are first shifted (clear_kinks) so that no ReLU6
    input lies within KINK_CLEARANCE of a kink: float32 rounding, in apq or
    anywhere, then cannot flip a ReLU6 mask against the float64 reference.
Layout (all f32 unless noted): input [16,28,28], labels i32 [16], arch string [5],
logits_train and logits_eval [5,16,10], grad_arch string [1], grad_loss f64 [1],
grad_names string [n], grad_used_rows i32 [n] (dim 0 of the used part; the
stored rows may be fewer), grad/<tensor name>, grad_bn_bias_names string [m]
(the shifted BN bias tensors; ["none"] when none) and grad_bn_bias/<tensor
name> (each whole, to load before the gradient). Attributes: format
"torch-golden", format_version 2, generator, torch_version, created, git_rev,
supernet_seed, space, grad_kink_clearance, grad_kink_margin (f64).
"""
import argparse
import datetime
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_reference as tr  # noqa: E402

N_IMAGES = 16
MAX_FLOATS = 4096
GRAD_ARCH = "r24_k3m56.k5m72_k7m72.k3m96_k5m104.k7m192_k3m192.k5m288_k7m296"
GENERATOR = "/usr/bin/python3 bench/make_goldens.py"
KINK_CLEARANCE = 1e-4  # float32's error at a ReLU6 input of the gradient subnet stays below 1e-5


def relu6_inputs(net, x, arch):
    """(BN prefix, input) of every ReLU6 of `arch` on images x (train-mode BN), in order."""
    net.act_trace = []
    with torch.no_grad():
        net.forward(x, arch, train=True)
    trace, net.act_trace = net.act_trace, None
    return trace


def kink_distance(h):
    """Per element: the distance of a ReLU6 input from its kinks at 0 and 6."""
    return torch.minimum(h.abs(), (h - 6).abs())


def clear_kinks(net, x, arch, clearance, max_rounds=500):
    """Shifts BN biases of `arch` (float64 net, images x, train-mode BN) until
    every ReLU6 input lies at least `clearance` from 0 and from 6. Layers go in
    forward order (a shift moves later layers' inputs); in the first layer with
    an input too close, each such channel's bias moves by the smallest of
    +-3, +-6, ... x clearance that clears the whole channel, rounded to a float32
    value so that apq's float32 copy is the same number. Returns {bias tensor
    name: (tensor, channels shifted)}."""
    cleared = {}
    for _ in range(max_rounds):
        for prefix, h in relu6_inputs(net, x, arch):
            d = kink_distance(h).transpose(0, 1).reshape(h.shape[1], -1)
            close = torch.nonzero(d.min(dim=1).values < clearance).flatten().tolist()
            if close:
                break
        else:
            return cleared
        name = f"{prefix}/bn/bias"
        b = net.params[name]
        with torch.no_grad():
            for c in close:
                v = h[:, c].flatten()
                for j in range(2, 2000):
                    new = float(np.float32(b[c].item() + (j // 2) * 3 * clearance * (1 if j % 2 else -1)))
                    w = v + (new - b[c].item())
                    if kink_distance(w).min().item() >= clearance:
                        b[c] = new
                        break
                else:
                    raise RuntimeError(f"clear_kinks: no shift clears {name}[{c}]")
        cleared[name] = (b, cleared.get(name, (b, 0))[1] + len(close))
    raise RuntimeError("clear_kinks: did not converge")


def fixed_strings(strs):
    n = max(len(s) for s in strs) + 1
    return np.array([s.encode() for s in strs], dtype=f"S{n}")


def git_rev(root):
    try:
        rev = subprocess.run(["git", "-C", root, "rev-parse", "--short=12", "HEAD"], capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--golden-supernet", default=os.path.join(root, "build", "apq-golden-supernet"),
                    help="the C program that writes the golden supernet.h5")
    ap.add_argument("--space", default=os.path.join(root, "supernet", "spaces", "fmnist-mbv2.ini"))
    ap.add_argument("--data", default=tr.DATA_DIR)
    ap.add_argument("--out", default=os.path.join(root, "tests", "golden", "torch_reference.h5"))
    args = ap.parse_args()
    if not os.access(args.golden_supernet, os.X_OK):
        sys.exit(f"make_goldens.py: {args.golden_supernet} missing; run: make build/apq-golden-supernet")
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

    with tempfile.TemporaryDirectory() as tmp:
        sn_path = os.path.join(tmp, "supernet.h5")
        subprocess.run([args.golden_supernet, "--space", args.space, "--out", sn_path], check=True,
                       env=dict(os.environ, APQ_QUIET="1"))
        net = tr.Supernet(sn_path, torch.float64)
        net32 = tr.Supernet(sn_path, torch.float32)
        with h5py.File(sn_path, "r") as f:
            seed = int(f.attrs["seed"])
    sp = net.space
    x_np, y_np = tr.load_images("t10k", N_IMAGES, args.data)
    x, y = torch.from_numpy(x_np).double(), torch.from_numpy(y_np)

    rng = np.random.default_rng(20260101)
    archs = [tr.smallest_arch(sp), tr.largest_arch(sp)] + [tr.random_arch(sp, rng, r) for r in (20, 24, 28)]
    logits_train, logits_eval = [], []
    with torch.no_grad():
        for a in archs:
            lt = net.forward(x, a, train=True)
            le = net.forward(x, a, train=False)
            lt32 = net32.forward(x.float(), a, train=True)
            err = (lt32.double() - lt).abs().max() / lt.abs().max()
            print(f"  {a}: torch fp32 vs fp64 max rel err {err:.2e}", file=sys.stderr)
            logits_train.append(lt.float().numpy())
            logits_eval.append(le.float().numpy())

    # ReLU6 inputs this close to a kink (0 or 6) can land on the other side in
    # float32 (C or PyTorch), flipping one mask element: about 1e-3 relative in
    # every upstream gradient. ~4e5 inputs leave about 1e-6 from a kink, less
    # than float32's error in train-mode BN, so the BN biases of the gradient
    # subnet are shifted until every input is KINK_CLEARANCE away; the shifted
    # biases are stored (grad_bn_bias/) and tests/test_golden.c applies them.
    cleared = clear_kinks(net, x, GRAD_ARCH, KINK_CLEARANCE)
    print(f"  {GRAD_ARCH}: shifted {sum(n for _, n in cleared.values())} BN bias channels in "
          f"{len(cleared)} tensors to clear every ReLU6 input by {KINK_CLEARANCE:g}", file=sys.stderr)
    margin = min(kink_distance(h).min().item() for _, h in relu6_inputs(net, x, GRAD_ARCH))
    print(f"  {GRAD_ARCH}: smallest distance of a ReLU6 input from a kink {margin:.2e}", file=sys.stderr)
    assert margin >= KINK_CLEARANCE, "clear_kinks left an input near a kink"
    logits = net.forward(x, GRAD_ARCH, train=True)
    loss = F.cross_entropy(logits, y, label_smoothing=0.1)
    loss.backward()
    names, used_rows, grads = [], [], {}
    for name, p in net.params.items():
        sl = net.used_slices(name, GRAD_ARCH)
        if p.grad is None:
            assert sl is None, f"{name}: used by the subnet but has no gradient"
            continue
        assert sl is not None, f"{name}: has a gradient but is not used"
        g = p.grad
        used = g[sl]
        rest = g.clone()
        rest[sl] = 0
        assert float(rest.abs().max()) == 0.0, f"{name}: gradient outside the used part"
        rows = used.shape[0]
        per_row = used[0].numel() if used.dim() > 1 else 1
        keep = min(rows, max(1, MAX_FLOATS // per_row))
        names.append(name)
        used_rows.append(rows)
        grads[name] = used[:keep].float().numpy()

    tmp_out = args.out + ".tmp"
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with h5py.File(tmp_out, "w") as f:
        f.attrs["format"] = np.bytes_("torch-golden")
        f.attrs["format_version"] = np.int64(2)
        f.attrs["generator"] = np.bytes_(GENERATOR)
        f.attrs["torch_version"] = np.bytes_(torch.__version__)
        f.attrs["created"] = np.bytes_(datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
        f.attrs["git_rev"] = np.bytes_(git_rev(root))
        f.attrs["supernet_seed"] = np.uint64(seed)
        f.attrs["space"] = np.bytes_(os.path.relpath(args.space, root))
        f.attrs["precision"] = np.bytes_("float64 in PyTorch, stored as float32")
        f["input"] = x_np.reshape(N_IMAGES, x_np.shape[2], x_np.shape[3])
        f["labels"] = y_np.astype(np.int32)
        f["arch"] = fixed_strings(archs)
        f["logits_train"] = np.stack(logits_train)
        f["logits_eval"] = np.stack(logits_eval)
        f["grad_arch"] = fixed_strings([GRAD_ARCH])
        f["grad_loss"] = np.array([loss.item()], dtype=np.float64)
        f["grad_names"] = fixed_strings(names)
        f["grad_used_rows"] = np.array(used_rows, dtype=np.int32)
        f["grad_bn_bias_names"] = fixed_strings(sorted(cleared) or ["none"])
        for name in sorted(cleared):
            f[f"grad_bn_bias/{name}"] = net.params[name].detach().float().numpy()
        f.attrs["grad_kink_clearance"] = np.float64(KINK_CLEARANCE)
        f.attrs["grad_kink_margin"] = np.float64(margin)
        for name in names:
            f[f"grad/{name}"] = grads[name]
    os.replace(tmp_out, args.out)
    print(f"make_goldens.py: wrote {args.out} ({os.path.getsize(args.out) / 1e3:.0f} kB, "
          f"{len(names)} gradient tensors, loss {loss.item():.6f})", file=sys.stderr)


if __name__ == "__main__":
    main()
