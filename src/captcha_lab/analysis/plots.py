"""Figures: a run's loss/accuracy curves (the report's two figures) and a sweep's overlays, drawn
from the histories that analysis.runs reads back."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: servers, CI and sweeps have no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from captcha_lab.analysis.runs import job_dirs, job_name, read_history  # noqa: E402


def _plot(path: Path, title: str, ylabel: str, lines: dict[str, dict[int, float]]) -> Path | None:
    lines = {label: points for label, points in lines.items() if points}
    if not lines:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, points in lines.items():
        epochs = sorted(points)
        ax.plot(epochs, [points[e] for e in epochs], label=label)
    ax.set(title=title, xlabel="epoch", ylabel=ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no epoch 1.5 on a short run's axis
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7 if len(lines) > 4 else 9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_run(run_dir: str | Path) -> list[Path]:
    """loss.png (train and val loss) and accuracy.png (train and val char/seq accuracy)."""
    run_dir = Path(run_dir)
    h = read_history(run_dir)
    loss = {k: h.get(k, {}) for k in ("train/loss", "val/loss")}
    acc = {k: h.get(k, {}) for k in ("train/char_acc", "val/char_acc", "train/seq_acc", "val/seq_acc")}
    written = [
        _plot(run_dir / "loss.png", "loss vs epoch", "cross-entropy", loss),
        _plot(run_dir / "accuracy.png", "accuracy vs epoch", "accuracy", acc),
    ]
    return [p for p in written if p is not None]


def plot_sweep(sweep_dir: str | Path, labels: dict[str, str] | None = None) -> list[Path]:
    """val_seq_acc.png, val_char_acc.png and val_loss.png: one line per job of a multirun, labelled by `labels`
    (job dir name -> label, e.g. its overrides) or the job dir name."""
    sweep_dir = Path(sweep_dir)
    labels = labels or {}
    names = {job_name(sweep_dir, job): job for job in job_dirs(sweep_dir)}
    histories = {
        labels.get(name, name): read_history(job)
        for name, job in names.items()
        if any(job.glob("events.out.tfevents.*"))
    }
    written = [
        _plot(
            sweep_dir / f"{tag.replace('/', '_')}.png",
            f"{tag} vs epoch",
            tag,
            {k: h.get(tag, {}) for k, h in histories.items()},
        )
        for tag in ("val/seq_acc", "val/char_acc", "val/loss")  # char_acc: seq_acc stays 0 early on
    ]
    return [p for p in written if p is not None]
