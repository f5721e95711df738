"""make bench, convolutional part: seconds per epoch on W5 (digits-shaped) and W6 (MNIST-shaped) of nncli,
PyTorch (nn.Conv2d, nn.MaxPool2d, nn.Linear, the same thread count) and a plain NumPy im2col loop written
here, with momentum, in float64 and float32, beside each workload's GEMM limit (the epoch's matrix products
at their shapes, timed alone). Medians of interleaved repetitions. Not part of the test suite.

    python benchmarks/convolution.py [--reps 5] [--only W5 W6]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

import nncli

ALPHA, BETA = 0.01, 0.9


@dataclass(frozen=True)
class ConvWorkload:
    name: str
    m: int
    image: tuple[int, int, int]
    convs: tuple[tuple[int, int, str], ...]  # (filters, kernel, padding), each followed by relu, maxpool 2
    batch_size: int

    def layers(self) -> list[dict]:
        specs = []
        for filters, kernel, padding in self.convs:
            specs += [
                {"type": "conv", "filters": filters, "kernel": kernel, "padding": padding},
                {"type": "maxpool", "size": 2},
            ]
        return specs

    def shapes(self) -> list[tuple[int, int, int, int]]:
        """(C, Ho·Wo, filters, kernel²·C) of each convolution, and the flat size the dense layer reads."""
        C, H, W = self.image
        out = []
        for filters, kernel, padding in self.convs:
            Ho, Wo = (H, W) if padding == "same" else (H - kernel + 1, W - kernel + 1)
            out.append((C, Ho * Wo, filters, kernel * kernel * C))
            C, H, W = filters, Ho // 2, Wo // 2
        return out, C * H * W

    def data(self, dtype):
        rng = np.random.default_rng(0)
        X = rng.normal(size=(self.m, math.prod(self.image))).astype(dtype)
        labels = rng.integers(0, 10, self.m)
        return X, np.eye(10, dtype=dtype)[labels], labels


WORKLOADS = [
    ConvWorkload("W5", 1797, (1, 8, 8), ((8, 3, "same"),), 32),
    ConvWorkload("W6", 10000, (1, 28, 28), ((16, 5, "valid"), (32, 5, "valid")), 64),
]


def prepare_nncli(w: ConvWorkload, dtype):
    X, Y, _ = w.data(dtype)
    net = nncli.Network.from_layers(input_shape=w.image, layers=w.layers(), n_out=10, output="softmax",
                                    activation="relu", initializer="he", seed=0, dtype=dtype)  # fmt: skip
    calls = [0]

    def run(epochs):
        calls[0] += 1
        nncli.train(net, X, Y, alpha=ALPHA, beta=BETA, batch="mini-batch", batch_size=w.batch_size,
                    epochs=epochs, seed=calls[0], engine="compiled")  # fmt: skip

    return run


def prepare_torch(w: ConvWorkload, dtype):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    torch.manual_seed(0)
    X_np, _, labels = w.data(dtype)
    X, y = torch.from_numpy(X_np).reshape(-1, *w.image), torch.from_numpy(labels)
    nn, modules, channels = torch.nn, [], w.image[0]
    for filters, kernel, padding in w.convs:
        modules += [nn.Conv2d(channels, filters, kernel, padding=padding), nn.ReLU(), nn.MaxPool2d(2)]
        channels = filters
    model = nn.Sequential(*modules, nn.Flatten(), nn.Linear(w.shapes()[1], 10)).to(X.dtype)
    step = torch.optim.SGD(model.parameters(), lr=ALPHA, momentum=BETA, dampening=BETA)
    loss_fn = nn.CrossEntropyLoss()

    def run(epochs):
        for _ in range(epochs):
            order = torch.randperm(w.m)
            for start in range(0, w.m, w.batch_size):
                index = order[start : start + w.batch_size]
                step.zero_grad(set_to_none=True)
                loss_fn(model(X[index]), y[index]).backward()
                step.step()

    return run


def prepare_numpy_loop(w: ConvWorkload, dtype):
    """The textbook im2col training loop: each convolution as windows copied out and one product, ReLU, 2×2
    max pooling by reshaping, a softmax layer; momentum. Written for these workloads only."""
    X, Y, _ = w.data(dtype)
    rng = np.random.default_rng(0)
    shapes, flat = w.shapes()
    kernels = [rng.normal(0, np.sqrt(2 / ck), size=(f, ck)).astype(dtype) for _, _, f, ck in shapes]
    biases = [np.zeros(f, dtype) for _, _, f, _ in shapes]
    W_out, b_out = rng.normal(0, np.sqrt(2 / flat), size=(10, flat)).astype(dtype), np.zeros(10, dtype)
    params = [*kernels, *biases, W_out, b_out]
    velocity = [np.zeros_like(p) for p in params]

    def step(xb, yb):
        m, grads_k, cache = len(xb), [], []
        a = xb.reshape(m, *w.image)
        for (filters, kernel, padding), K, b in zip(w.convs, kernels, biases, strict=True):
            pad = kernel // 2 if padding == "same" else 0
            padded = np.pad(a, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
            windows = sliding_window_view(padded, (kernel, kernel), axis=(2, 3))  # m, C, Ho, Wo, k, k
            Ho, Wo = windows.shape[2:4]
            cols = windows.transpose(0, 2, 3, 1, 4, 5).reshape(m * Ho * Wo, -1)
            z = (cols @ K.T + b).reshape(m, Ho, Wo, filters).transpose(0, 3, 1, 2)
            r = np.maximum(z, 0)
            tiles = r.reshape(m, filters, Ho // 2, 2, Wo // 2, 2)
            pooled = tiles.max(axis=(3, 5))
            cache.append((a.shape, padded.shape, pad, cols, r, pooled, kernel))
            a = pooled
        h = a.reshape(m, -1)
        logits = h @ W_out.T + b_out
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        delta = (p - yb) / m
        gW_out, gb_out = delta.T @ h, delta.sum(axis=0)
        d = (delta @ W_out).reshape(a.shape)
        for index in range(len(kernels) - 1, -1, -1):
            shape, padded_shape, pad, cols, r, pooled, kernel = cache[index]
            mask = r == np.repeat(np.repeat(pooled, 2, axis=2), 2, axis=3)
            dr = np.repeat(np.repeat(d, 2, axis=2), 2, axis=3) * mask * (r > 0)
            F, Ho, Wo = dr.shape[1:]
            dz = dr.transpose(0, 2, 3, 1).reshape(-1, F)
            grads_k.insert(0, (dz.T @ cols, dz.sum(axis=0)))
            if index > 0:
                dcols = (dz @ kernels[index]).reshape(m, Ho, Wo, shape[1], kernel, kernel)
                dpad = np.zeros(padded_shape, dtype)
                for i in range(kernel):
                    for j in range(kernel):
                        dpad[:, :, i : i + Ho, j : j + Wo] += dcols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
                d = dpad[:, :, pad : pad + shape[2], pad : pad + shape[3]] if pad else dpad
        grads = [g for g, _ in grads_k] + [g for _, g in grads_k] + [gW_out, gb_out]
        for p_, v, g in zip(params, velocity, grads, strict=True):
            v *= BETA
            v += (1 - BETA) * g
            p_ -= ALPHA * v

    def run(epochs):
        for _ in range(epochs):
            order = rng.permutation(w.m)
            for start in range(0, w.m, w.batch_size):
                rows = order[start : start + w.batch_size]
                step(X[rows], Y[rows])

    return run


def gemm_limit(w: ConvWorkload, dtype) -> float:
    """Seconds of one epoch's matrix products at their shapes: per step and convolution, z = K A
    (F × CK × m·P), the kernels' gradient δ Aᵀ (F × m·P × CK) and, above the first, Kᵀ δ (CK × F × m·P); and
    the dense layer's three."""
    rng = np.random.default_rng(1)
    shapes, flat = w.shapes()
    total = 0.0
    sizes = [w.batch_size] * (w.m // w.batch_size) + ([w.m % w.batch_size] if w.m % w.batch_size else [])
    counts: dict[tuple[int, int, int], int] = {}
    for rows in sizes:
        for index, (_, positions, filters, ck) in enumerate(shapes):
            products = [(filters, ck, rows * positions), (filters, rows * positions, ck)]
            if index > 0:
                products.append((ck, filters, rows * positions))
            for shape in products:
                counts[shape] = counts.get(shape, 0) + 1
        for shape in [(rows, flat, 10), (10, rows, flat), (rows, 10, flat)]:
            counts[shape] = counts.get(shape, 0) + 1
    for (n, k, p), count in counts.items():
        a, b = rng.normal(size=(n, k)).astype(dtype), rng.normal(size=(k, p)).astype(dtype)
        out = np.empty((n, p), dtype)
        repeats = max(1, int(2000 / count))
        start = time.perf_counter()
        for _ in range(repeats):
            np.matmul(a, b, out=out)
        total += (time.perf_counter() - start) / repeats * count
    return total


CONTENDERS = {"nncli": prepare_nncli, "pytorch": prepare_torch, "numpy im2col": prepare_numpy_loop}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--only", nargs="*", default=[w.name for w in WORKLOADS])
    args = parser.parse_args()
    print(f"{'':4} {'dtype':7} {'contender':13} {'s/epoch':>10} {'÷ nncli':>8} {'÷ GEMM limit':>13}")
    for w in WORKLOADS:
        if w.name not in args.only:
            continue
        for dtype in (np.float64, np.float32):
            runs = {name: prepare(w, dtype) for name, prepare in CONTENDERS.items()}
            runs = {name: run for name, run in runs.items() if run is not None}
            for run in runs.values():
                run(1)  # one-time work: numba's compile or load, thread start-up
            samples = {name: [] for name in [*runs, "GEMM limit"]}
            for _ in range(args.reps):
                for name, run in runs.items():
                    time.sleep(0.25)
                    start = time.perf_counter()
                    run(1)
                    samples[name].append(time.perf_counter() - start)
                samples["GEMM limit"].append(gemm_limit(w, dtype))
            medians = {name: statistics.median(values) for name, values in samples.items()}
            for name, seconds in medians.items():
                ratio = seconds / medians["nncli"]
                print(
                    f"{w.name:4} {np.dtype(dtype).name:7} {name:13} {seconds:10.4f} {ratio:8.2f} "
                    f"{seconds / medians['GEMM limit']:13.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
