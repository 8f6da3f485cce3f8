"""polytrack beside a real torch (CPU build): scalars, seeds, the environment record.

Runs in the `frameworks` tox env, which installs torch pinned; skipped elsewhere.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import polytrack

torch = pytest.importorskip("torch")


@pytest.mark.usefixtures("hot_path")
def test_tensor_scalars_are_metric_values(home: Path) -> None:
    """0-d tensors (a loss that requires grad, an accuracy) are logged as numbers on both
    hot paths, without torch's warning about converting a grad tensor."""
    weight = torch.tensor(1.0, requires_grad=True)
    with polytrack.init(dir=home, capture=False) as run:
        for step in range(5):
            loss = weight * (1.0 / (step + 1))
            run.log_metrics({"loss": loss, "acc": torch.tensor(step / 5)}, step=step)
            run.log_metrics({"lr": torch.tensor(0.1, dtype=torch.float64)}, step=step)
        run.log_params({"dropout": torch.tensor(0.5)})
    view = polytrack.get_run(run.id, home=home)
    assert view.metrics["loss"].last == pytest.approx(0.2)
    assert view.metrics["acc"].count == 5
    assert view.params["dropout"] == 0.5


def test_a_tensor_with_elements_is_refused(home: Path) -> None:
    """A tensor of several values is not a metric; the error names the key."""
    with (
        polytrack.init(dir=home, capture=False) as run,
        pytest.raises(polytrack.InvalidMetricError, match="'weights'"),
    ):
        run.log_metrics({"weights": torch.ones(3)}, step=0)


def test_a_tiny_model_trains_reproducibly_under_seed_everything(home: Path) -> None:
    """Seeded twice, a tiny model trains to the same bits; the seeds and torch's version
    are recorded with the runs."""

    def train() -> tuple[str, float]:
        polytrack.seed_everything(7, deterministic=True)
        run = polytrack.init(dir=home, capture={"logs": False, "system": False, "git": False})
        try:
            model = torch.nn.Sequential(
                torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1)
            )
            data = torch.randn(64, 4)
            target = data.sum(dim=1, keepdim=True)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
            for step in range(20):
                optimizer.zero_grad()
                loss = torch.nn.functional.mse_loss(model(data), target)
                loss.backward()
                optimizer.step()
                run.log_metrics({"loss": loss.detach()}, step=step)
            run.finish()
            return run.id, float(loss.detach())
        finally:
            torch.use_deterministic_algorithms(False)

    first_id, first = train()
    second_id, second = train()
    assert first == second
    for run_id in (first_id, second_id):
        snapshot = polytrack.get_run(run_id, home=home).snapshot()
        assert snapshot.seeds is not None and snapshot.seeds.seed == 7
        assert "torch" in snapshot.seeds.libraries and snapshot.seeds.deterministic
        assert snapshot.environment is not None
        assert snapshot.environment.frameworks["torch"] == torch.__version__
        assert snapshot.environment.packages["torch"] == torch.__version__


def test_tensors_as_media(home: Path) -> None:
    """A tiny model's tensors as media: a CHW float image (with grad) comes back as its
    pixels, a weight matrix as the histogram numpy makes of it, audio as samples."""
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 4)
    image = torch.rand(3, 5, 6, requires_grad=True)
    batch = (torch.rand(2, 1, 4, 4) * 255).to(torch.uint8)
    with polytrack.init(dir=home, capture=False) as run:
        run.log_image("input", image * 1.0, step=0)
        run.log_image("batch", batch, step=0)
        run.log_histogram("fc.weight", model.weight, step=0, bins=10)
        run.log_audio("tone", torch.sin(torch.linspace(0, 100, 800)), step=0, sample_rate=8000)
    view = polytrack.get_run(run.id, home=home)
    expected = (image.detach().permute(1, 2, 0).double().numpy() * 255).round().astype("uint8")
    assert (view.media("input")[0].value == expected).all()
    assert (view.media("batch")[0].value == batch[:, 0].numpy()).all()  # grayscale: NHW
    counts = view.media("fc.weight")[0].value.counts
    import numpy as np

    assert counts.tolist() == np.histogram(model.weight.detach().numpy(), bins=10)[0].tolist()
    assert view.media("tone")[0].value.sample_rate == 8000
