"""Evaluating a trained system: split metrics, per-character scores, confusion matrix, misreads.

Split metrics come from the system's own test step and texts from `Predictor.read` (as predict.py
reads them), so any model kind is evaluated the same way."""

import csv
from pathlib import Path

import lightning as L
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402
from torch.utils.tensorboard import SummaryWriter  # noqa: E402
from torchmetrics.classification import (  # noqa: E402
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

from captcha_lab.images import LabelledImages  # noqa: E402
from captcha_lab.predict import Predictor  # noqa: E402
from captcha_lab.system import CaptchaSystem  # noqa: E402


def split_metrics(system: CaptchaSystem, data: LabelledImages, split: str, batch_size: int = 256) -> dict:
    """loss, char_acc, seq_acc, acc_posK of one split, named `<split>/...`, by the system's test step."""
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    loader = DataLoader(TensorDataset(data.images, data.targets), batch_size=batch_size)
    (tested,) = trainer.test(system, dataloaders=loader, verbose=False)
    return {f"{split}/{k.removeprefix('test/')}": v for k, v in tested.items()}


def read_texts(system: CaptchaSystem, images: torch.Tensor, batch_size: int) -> list[str]:
    # What predict.py would read.
    return Predictor(system.net, system.charset.symbols, batch_size).read_all(images)[0]


def char_scores(symbols: str, truths: list[str], preds: list[str]) -> tuple[list[dict], torch.Tensor]:
    """Per-symbol precision/recall/F1/support and the (C, C) confusion matrix (rows = truth) over
    the characters of equal-length pairs (all of them for fixed-length models)."""
    pairs = [(t, p) for t, p in zip(truths, preds, strict=True) if len(t) == len(p)]
    target = torch.tensor([symbols.index(c) for t, _ in pairs for c in t], dtype=torch.long)
    pred = torch.tensor([symbols.index(c) for _, p in pairs for c in p], dtype=torch.long)
    c = len(symbols)
    metrics = {"precision": MulticlassPrecision, "recall": MulticlassRecall, "f1": MulticlassF1Score}
    if len(target):
        scores = {k: m(num_classes=c, average=None, zero_division=0)(pred, target) for k, m in metrics.items()}  # (C,)
        confusion = MulticlassConfusionMatrix(num_classes=c)(pred, target)  # (C, C)
    else:  # no read has its label's length (e.g. an undertrained CTC net): nothing to score
        scores, confusion = dict.fromkeys(metrics, torch.zeros(c)), torch.zeros(c, c, dtype=torch.long)
    rows = [
        {"char": s, **{k: round(float(v[i]), 4) for k, v in scores.items()}, "support": int(confusion[i].sum())}
        for i, s in enumerate(symbols)
    ]
    return rows, confusion


def write_char_csvs(out_dir: Path, symbols: str, rows: list[dict], confusion: torch.Tensor) -> None:
    with open(out_dir / "per_char.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with open(out_dir / "confusion_matrix.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["true\\pred", *symbols])
        writer.writerows([s, *confusion[i].tolist()] for i, s in enumerate(symbols))


def confusion_figure(symbols: str, confusion: torch.Tensor, title: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(7, 6))
    im = ax.imshow(confusion.numpy(), cmap="Blues")
    ticks = range(len(symbols))
    ax.set_xticks(ticks, list(symbols))
    ax.set_yticks(ticks, list(symbols))
    ax.set(xlabel="predicted", ylabel="true", title=title)
    for i, j in zip(*torch.nonzero(confusion, as_tuple=True), strict=True):
        ax.text(j, i, int(confusion[i, j]), ha="center", va="center", fontsize=6)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def misread_figure(data: LabelledImages, truths: list[str], preds: list[str], limit: int = 24) -> plt.Figure:
    """A grid of misread captchas titled `true -> predicted` (at most `limit`)."""
    wrong = [i for i, (t, p) in enumerate(zip(truths, preds, strict=True)) if t != p][:limit]
    cols = 4
    rows = max(1, -(-len(wrong) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 2.6, rows * 1.0), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, wrong, strict=False):
        ax.imshow(data.images[i, 0].numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{truths[i]} -> {preds[i]}", fontsize=8, color="firebrick")
    if not wrong:
        axes.flat[0].set_title("no misread captchas")
    fig.tight_layout()
    return fig


def analyse(
    system: CaptchaSystem, splits: dict[str, LabelledImages], analysis_split: str, out_dir: Path, batch_size: int = 256
) -> dict:
    """Metrics of every split, plus per-character scores, confusion matrix and misread grid of
    `analysis_split`; writes CSVs, PNGs and TensorBoard events into `out_dir`."""
    results = {}
    for name, data in splits.items():
        results.update(split_metrics(system, data, name, batch_size))
    data = splits[analysis_split]
    symbols = system.charset.symbols
    truths = system.charset.texts(data.targets)  # shorter labels are padded with PAD
    preds = read_texts(system, data.images, batch_size)
    rows, confusion = char_scores(symbols, truths, preds)
    write_char_csvs(out_dir, symbols, rows, confusion)
    figures = {
        "confusion_matrix": confusion_figure(symbols, confusion, f"{analysis_split}: characters"),
        "misread": misread_figure(data, truths, preds),
    }
    with SummaryWriter(str(out_dir)) as tb:
        for key, value in results.items():
            tb.add_scalar(key, value, 0)
        for name, fig in figures.items():
            fig.savefig(out_dir / f"{name}.png", dpi=90)
            tb.add_figure(f"{analysis_split}/{name}", fig, 0)  # closes the figure
    misread = [{"name": n, "true": t, "pred": p} for n, t, p in zip(data.names, truths, preds, strict=True) if t != p]
    results.update(
        analysis_split=analysis_split,
        sizes={k: len(v) for k, v in splits.items()},
        per_char=rows,
        confusion_matrix=confusion.tolist(),
        misread=misread,
    )
    return results
