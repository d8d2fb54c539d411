"""Figures: a run's loss/accuracy curves (the report's two figures) and a sweep's overlays.

Per-epoch history is read back from the run's TensorBoard event files, so any finished run,
old or new, can be plotted without re-training."""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: servers, CI and sweeps have no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from captcha_lab.atomic import write_text  # noqa: E402
from captcha_lab.errors import DataError, user_errors  # noqa: E402
from captcha_lab.sweep import job_dirs, job_name, job_order, write_summary  # noqa: E402

History = dict[str, dict[int, float]]  # tag -> {epoch: value}


def read_history(run_dir: str | Path) -> History:
    """Every scalar of a run's event files keyed by epoch (Lightning logs `epoch` at each step);
    a resumed run's repeated epochs keep their latest value."""
    history: History = {}
    for events in sorted(Path(run_dir).glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        tags = acc.Tags()["scalars"]
        if "epoch" not in tags:
            continue
        epoch_at = {e.step: int(e.value) for e in acc.Scalars("epoch")}
        for tag in tags:
            for e in acc.Scalars(tag):
                if e.step in epoch_at:
                    history.setdefault(tag, {})[epoch_at[e.step] + 1] = e.value  # epochs from 1
    return history


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


def job_labels(overrides: dict[str, str]) -> dict[str, str]:
    """Job dir name -> the overrides that set it apart from the sweep's other jobs."""
    tokens = {job: o.split() for job, o in overrides.items()}
    common = set.intersection(*(set(t) for t in tokens.values())) if len(tokens) > 1 else set()
    return {job: " ".join(t for t in ts if t not in common) or job for job, ts in tokens.items()}


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


CURVE_COLUMNS = ["val/char_acc", "val/seq_acc", "val/loss", "train/loss"]


def write_curves(sweep_dir: Path, labels: dict[str, str]) -> None:
    """curves.md: each job's last-epoch and best value of the logged curves. Short runs whose
    val/seq_acc is still 0 pick their first epoch as `best.ckpt`; the curves show more."""
    lines = ["| job | epochs | " + " | ".join(f"{c} last | best" for c in CURVE_COLUMNS) + " |"]
    lines.append("|" + "---|" * (2 + 2 * len(CURVE_COLUMNS)))
    for job in sorted(labels, key=job_order):
        h, label = read_history(sweep_dir / job), labels[job]
        cells = []
        for c in CURVE_COLUMNS:
            points = h.get(c) or {0: float("nan")}
            best = min(points.values()) if c.endswith("loss") else max(points.values())
            cells += [f"{points[max(points)]:.4f}", f"{best:.4f}"]
        lines.append(f"| {label} | {max(h.get('val/loss', {0: 0}))} | " + " | ".join(cells) + " |")
    write_text(sweep_dir / "curves.md", "\n".join(lines) + "\n")


def summarize_sweep(sweep_dir: str | Path) -> list[dict]:
    """summary.csv/.md, curves.md and the overlay plots of a multirun; returns its rows, best first."""
    sweep_dir = Path(sweep_dir)
    rows = write_summary(sweep_dir)
    labels = job_labels({r["job"]: r["overrides"] for r in rows})
    plot_sweep(sweep_dir, labels)
    write_curves(sweep_dir, labels)
    return rows


def replot(folder: str) -> list[Path]:
    """A finished run's figures, or a sweep's tables and overlays, drawn again."""
    path = Path(folder)
    if not path.is_dir():
        raise DataError(f"{folder}: not a folder")
    if any(path.glob("events.out.tfevents.*")):
        return plot_run(path)
    if not job_dirs(path):
        raise DataError(f"{folder}: holds neither a run (events.out.tfevents.*) nor a sweep's job folders")
    summarize_sweep(path)
    return sorted(path.glob("*.png"))


if __name__ == "__main__":  # python -m captcha_lab.plots DIR...: re-plot finished runs or sweeps
    with user_errors():
        if len(sys.argv) < 2:
            raise DataError("usage: python -m captcha_lab.plots RUN_OR_SWEEP_DIR...")
        for arg in sys.argv[1:]:
            print(arg, "->", ", ".join(p.name for p in replot(arg)))
