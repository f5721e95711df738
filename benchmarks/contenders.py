"""One epoch of a workload, four ways: nncli's compiled and numpy engines, scikit-learn's MLPClassifier
and a PyTorch loop; with momentum (the lecture's) or with Adam.

Each ``prepare_*`` returns a function ``run(epochs)`` that trains that many more epochs, or None when the
library is missing: nncli in one ``nncli.train`` call, as a user trains (with the engine named, since a
sample of a fraction of a second is shorter than the runs ``auto`` compiles); scikit-learn with one
``partial_fit`` per epoch; PyTorch in a plain loop.
All use the workload's sizes, activations, learning rate α, β (Adam's β₁), L2 strength λ and batches; with
Adam, β₂ = 0.999 and ε = 1e-8 (every library's default).
"""

from __future__ import annotations

import warnings

import numpy as np
from workloads import ALPHA, BETA, LAMBDA, Workload

import nncli


def prepare_nncli(w: Workload, dtype, optimizer: str, engine: str = "compiled"):
    X, Y, _ = w.data(dtype)
    init = "he" if w.activation == "relu" else "xavier"
    net = nncli.Network(
        list(w.sizes), activation=w.activation, output=w.output, initializer=init, seed=0, dtype=dtype
    )
    calls = [0]

    def run(epochs: int):
        calls[0] += 1
        nncli.train(
            net,
            X,
            Y,
            alpha=ALPHA,
            lambda_=LAMBDA,
            beta=BETA,
            batch=w.batch,
            batch_size=w.batch_size,
            epochs=epochs,
            seed=calls[0],
            engine=engine,
            optimizer=optimizer,
        )

    return run


def prepare_nncli_numpy(w: Workload, dtype, optimizer: str):
    return prepare_nncli(w, dtype, optimizer, engine="numpy")


def prepare_sklearn(w: Workload, dtype, optimizer: str):
    try:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier
    except ImportError:
        return None
    X, _, labels = w.data(dtype)
    activation = {"relu": "relu", "tanh": "tanh", "sigmoid": "logistic"}[w.activation]
    model = MLPClassifier(
        hidden_layer_sizes=w.sizes[1:-1],
        activation=activation,
        solver="sgd" if optimizer == "momentum" else "adam",
        learning_rate_init=ALPHA,
        momentum=BETA,
        nesterovs_momentum=False,
        beta_1=BETA,
        alpha=LAMBDA,
        batch_size=w.step_rows[0],
        shuffle=w.batch != "batch",
        random_state=0,
    )
    classes = np.unique(labels)

    def run(epochs: int):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for _ in range(epochs):
                model.partial_fit(X, labels, classes=classes)

    return run


def prepare_torch(w: Workload, dtype, optimizer: str):
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(0)
    X_np, _, labels = w.data(dtype)
    X = torch.from_numpy(X_np)
    tdtype = X.dtype
    layers = []
    for index, (s_in, s_out) in enumerate(zip(w.sizes[:-1], w.sizes[1:], strict=True)):
        layers.append(torch.nn.Linear(s_in, s_out, dtype=tdtype))
        if index < len(w.sizes) - 2:
            layers.append(
                {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid}[w.activation]()
            )
    model = torch.nn.Sequential(*layers)
    if w.sizes[-1] == 1:
        y = torch.from_numpy(labels.reshape(-1, 1).astype(dtype))
        loss_fn = torch.nn.BCEWithLogitsLoss()
    else:
        y = torch.from_numpy(labels)
        loss_fn = torch.nn.CrossEntropyLoss()
    rows = w.step_rows[0]
    weights = [p for name, p in model.named_parameters() if name.endswith("weight")]
    biases = [p for name, p in model.named_parameters() if name.endswith("bias")]
    # λ/m on the weights only (coupled, as nncli's D), and for momentum dampening = β: V := βV + (1 − β)D,
    # the lecture's momentum
    groups = [{"params": weights, "weight_decay": LAMBDA / rows}, {"params": biases, "weight_decay": 0.0}]
    if optimizer == "momentum":
        step = torch.optim.SGD(groups, lr=ALPHA, momentum=BETA, dampening=BETA)
    else:
        step = torch.optim.Adam(groups, lr=ALPHA, betas=(BETA, 0.999), eps=1e-8)
    shuffle = w.batch != "batch"

    def run(epochs: int):
        for _ in range(epochs):
            one_epoch()

    def one_epoch():
        order = torch.randperm(w.m) if shuffle else None
        for start in range(0, w.m, rows):
            if order is None:
                xb, yb = X[start : start + rows], y[start : start + rows]
            else:
                index = order[start : start + rows]
                xb, yb = X[index], y[index]
            step.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            loss.backward()
            step.step()

    return run


CONTENDERS = {
    "nncli": prepare_nncli,
    "nncli numpy": prepare_nncli_numpy,
    "scikit-learn": prepare_sklearn,
    "pytorch": prepare_torch,
}
