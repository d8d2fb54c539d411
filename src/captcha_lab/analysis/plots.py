"""Figures: a run's loss/accuracy curves (the report's two figures) and a sweep's overlays, drawn
from the histories that analysis.runs reads back."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: servers, CI and sweeps have no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from captcha_lab.analysis.runs import Points, histories_by_label, mean_and_range, read_history  # noqa: E402

Band = tuple[Points, Points]  # lowest and highest value at each epoch


def _plot(
    path: Path, title: str, ylabel: str, lines: dict[str, Points], bands: dict[str, Band] | None = None
) -> Path | None:
    lines = {label: points for label, points in lines.items() if points}
    if not lines:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, points in lines.items():
        epochs = sorted(points)
        # A one-epoch curve is a single point: drawn as a line alone, it would not show at all.
        marker = "o" if len(epochs) == 1 else None
        (line,) = ax.plot(epochs, [points[e] for e in epochs], label=label, marker=marker)
        if label in (bands or {}):
            low, high = bands[label]
            ax.fill_between(
                epochs, [low[e] for e in epochs], [high[e] for e in epochs], color=line.get_color(), alpha=0.2
            )
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
        _plot(run_dir / "loss.png", "loss vs epoch", "loss", loss),
        _plot(run_dir / "accuracy.png", "accuracy vs epoch", "accuracy", acc),
    ]
    return [p for p in written if p is not None]


def plot_sweep(sweep_dir: str | Path, labels: dict[str, str] | None = None) -> list[Path]:
    """val_seq_acc.png, val_char_acc.png and val_loss.png of a multirun: one line per label of
    `labels` (job dir name -> label, e.g. its overrides; the job dir name by default). Jobs that
    share a label (a recipe's seeds or folds) are drawn as their mean with a min-max band."""
    sweep_dir = Path(sweep_dir)
    runs = histories_by_label(sweep_dir, labels or {})
    written = []
    for tag in ("val/seq_acc", "val/char_acc", "val/loss"):  # char_acc: seq_acc stays 0 early on
        lines, bands = {}, {}
        for label, histories in runs.items():
            curves = [h.get(tag, {}) for h in histories]
            if len(histories) == 1:
                lines[label] = curves[0]
                continue
            label = f"{label} (mean of {len(histories)})"
            lines[label], *band = mean_and_range(curves)
            bands[label] = tuple(band)
        title = f"{tag} vs epoch" + (", band: min-max over seeds/folds" if bands else "")
        written.append(_plot(sweep_dir / f"{tag.replace('/', '_')}.png", title, tag, lines, bands))
    return [p for p in written if p is not None]
