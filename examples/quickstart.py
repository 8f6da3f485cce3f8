"""Quick-start: train a logistic regression with numpy and record it with polytrack.

Three runs of the same model with different learning rates, each logging its training
loss and accuracy at every step and its validation metrics at the end of every epoch.
The runs go to the embedded store at `POLYTRACK_HOME` (default
`$XDG_DATA_HOME/polytrack`, else `~/.local/share/polytrack`); list them afterwards with

    polytrack --home "$POLYTRACK_HOME" runs ls

Run it with:

    POLYTRACK_HOME=./quickstart-home python examples/quickstart.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import polytrack

SEED = 0
N_TRAIN, N_VAL, N_FEATURES = 1_000, 250, 20
EPOCHS, BATCH_SIZE = 10, 50  # 20 steps per epoch, 200 steps per run
LEARNING_RATES = (0.01, 0.1, 1.0)
L2 = 1e-3


def make_data(
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Two classes separated by a random hyperplane, with 10% of the labels flipped."""
    w_true = rng.normal(size=N_FEATURES)
    x = rng.normal(size=(N_TRAIN + N_VAL, N_FEATURES))
    y = (x @ w_true + 0.5 * rng.normal(size=len(x)) > 0).astype(np.float64)
    flip = rng.random(len(y)) < 0.1
    y[flip] = 1.0 - y[flip]
    return x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:]


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def evaluate(w: np.ndarray, b: float, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Mean binary cross-entropy and accuracy."""
    p = np.clip(sigmoid(x @ w + b), 1e-7, 1 - 1e-7)
    loss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    acc = np.mean((p > 0.5) == (y > 0.5))
    return float(loss), float(acc)


def train(lr: float, data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> Path:
    """Train one model at learning rate `lr`; return the home of the store it went to."""
    x_train, y_train, x_val, y_val = data
    rng = np.random.default_rng(SEED)
    w, b = np.zeros(N_FEATURES), 0.0
    params = {
        "lr": lr,
        "epochs": EPOCHS,
        "batch_size": BATCH_SIZE,
        "model": {"kind": "logistic-regression", "l2": L2},  # recorded as model.kind, model.l2
        "data": {"n_train": N_TRAIN, "n_val": N_VAL, "features": N_FEATURES, "seed": SEED},
    }
    with polytrack.init(
        project="quickstart", name=f"logreg-lr{lr:g}", params=params, tags=["quickstart", "numpy"]
    ) as run:
        # Content hashes of the data, so that a rerun can tell it trained on the same.
        run.log_data_ref("train", x_train)
        run.log_data_ref("val", x_val)
        step = 0
        for epoch in range(EPOCHS):
            order = rng.permutation(N_TRAIN)
            for start in range(0, N_TRAIN, BATCH_SIZE):
                batch = order[start : start + BATCH_SIZE]
                xb, yb = x_train[batch], y_train[batch]
                p = sigmoid(xb @ w + b)
                w -= lr * (xb.T @ (p - yb) / len(batch) + L2 * w)
                b -= lr * float(np.mean(p - yb))
                loss, acc = evaluate(w, b, xb, yb)
                run.log_metrics({"loss": loss, "acc": acc}, step=step)
                step += 1
            # Once per epoch: validation metrics, and the epoch itself at the same step.
            val_loss, val_acc = evaluate(w, b, x_val, y_val)
            run.log_metrics({"val/loss": val_loss, "val/acc": val_acc}, step=step - 1, epoch=epoch)
        print(f"run {run.id} {run.name}: val/loss {val_loss:.4f}  val/acc {val_acc:.3f}")
    # Not simply POLYTRACK_HOME: init() records to a temporary directory (with a
    # TrackingWarning) when the home cannot be written.
    return run.settings.home


def main() -> None:
    data = make_data(np.random.default_rng(SEED))
    for lr in LEARNING_RATES:
        home = train(lr, data)
    best = polytrack.runs(project="quickstart", order_by="-metrics.val/acc", limit=1, home=home)
    if best:
        print(f"best run so far: {best[0].name} (val/acc {best[0].metrics['val/acc'].last:.3f})")
    print(f"runs recorded in the store at {home.resolve()}")


if __name__ == "__main__":
    main()
