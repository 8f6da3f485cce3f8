"""Real homes for the browser tests, recorded through the public API (init/log/finish)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

import polytrack

# Captures that start threads or walk the environment are off where a test does not look
# at them: the tests stay fast on a busy machine.
QUIET = {"git": False, "environment": False, "hardware": False, "system": False, "logs": False}


def demo_home(home: Path, work: Path) -> dict[str, str]:
    """A small project: a data-preparation run and three training runs reading its output.

    Returns:
        run name -> run id.
    """
    work.mkdir(parents=True, exist_ok=True)
    ids: dict[str, str] = {}
    data = work / "train.csv"
    with polytrack.init(
        project="mnist", name="prepare-data", dir=home, capture=QUIET, user="ana"
    ) as run:
        data.write_text("x,y\n" + "".join(f"{i},{i % 10}\n" for i in range(200)))
        run.log_data_ref("train", data, role="output")
        run.log_outputs(rows=200)
        ids["prepare-data"] = run.id
    rng = np.random.default_rng(7)
    for lr, opt in ((0.1, "sgd"), (0.01, "adam"), (0.003, "adam")):
        name = f"resnet-lr{lr}"
        params = {"lr": lr, "optimizer": opt, "net": {"depth": 18}, "batch_size": 64}
        with polytrack.init(
            project="mnist",
            name=name,
            params=params,
            tags=["cnn"],
            dir=home,
            capture={**QUIET, "logs": True},
            user="ana",
        ) as run:
            run.log_data_ref("train", data, role="input")
            loss = 2.3
            for step in range(300):
                loss = loss * (1 - lr * 0.9) + 0.02 * float(rng.normal()) * loss + 0.001
                acc = 1 - math.exp(-step * lr * 0.2) * 0.9 + 0.01 * float(rng.normal())
                value = float("nan") if (lr == 0.1 and step == 150) else loss
                run.log_metrics({"loss": value, "acc": acc}, step=step)
                if step % 100 == 0:
                    print(f"step {step}: loss={loss:.4f} acc={acc:.3f}")
            model = work / f"model-{lr}.bin"
            model.write_bytes(os.urandom(256))
            run.log_model(model, "classifier")
            run.log_outputs(final_loss=loss)
            ids[name] = run.id
    with polytrack.init(
        project="cifar",
        name="vit-small",
        params={"lr": 0.0005, "optimizer": "adamw"},
        dir=home,
        capture=QUIET,
        user="ben",
    ) as run:
        run.log_metrics({"loss": 1.5}, step=0)
        run.log_metrics({"loss": 1.2}, step=1)
        ids["vit-small"] = run.id
    return ids


def million_point_run(home: Path, points: int = 1_000_000) -> str:
    """One run with a `points`-long series (logged in one process, fast path)."""
    with polytrack.init(project="big", name="million", dir=home, capture=QUIET) as run:
        steps = np.arange(points)
        values = np.sin(steps / 5000.0) + steps / points
        log = run.log_metrics
        for step, value in zip(steps.tolist(), values.tolist(), strict=True):
            log({"signal": value}, step=step)
        return run.id
