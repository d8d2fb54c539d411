"""Evaluating a trained system: split metrics, per-character scores, confusion matrix, misreads.

Split metrics come from the system's own test step and texts from the net's own decoding (as the
readers decode them), so any model kind is evaluated the same way."""

import csv
import itertools
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

from captcha_lab.atomic import writing  # noqa: E402
from captcha_lab.data.charset import UNKNOWN_SYMBOL  # noqa: E402
from captcha_lab.data.labelled import LabelledImages  # noqa: E402
from captcha_lab.training.system import CaptchaSystem  # noqa: E402


def split_metrics(trainer: L.Trainer, system: CaptchaSystem, data: LabelledImages, split: str, batch_size: int) -> dict:
    """loss, char_acc, seq_acc, acc_posK of one split, named `<split>/...`, by the system's test step."""
    loader = DataLoader(TensorDataset(data.images, data.targets), batch_size=batch_size)
    (tested,) = trainer.test(system, dataloaders=loader, verbose=False)
    return {f"{split}/{k.removeprefix('test/')}": v for k, v in tested.items()}


@torch.inference_mode()
def read_texts(system: CaptchaSystem, images: torch.Tensor, batch_size: int) -> list[str]:
    """(N, C, H, W) images -> N texts, `batch_size` at a time, decoded as the readers decode."""
    system.eval()  # as the readers put their nets: no dropout in the reads
    texts = []
    for batch in images.split(batch_size):
        index, _ = system.decode(system(batch))
        texts += system.charset.texts(index)
    return texts


MISSING = "∅"  # the class of a character absent from a read or label shorter than the other


def aligned_classes(symbols: str, truths: list[str], preds: list[str], missing: bool) -> tuple[torch.Tensor, ...]:
    """(N,) label and (N,) read class indices, position by position over every pair up to the
    longer one's end: class len(symbols) (MISSING) marks where the shorter of the two has ended,
    and a label's symbol that the net cannot write (no row of its own: what was read there is
    a false positive of its symbol, as past a label's end)."""
    index = {None: len(symbols), **{s: i for i, s in enumerate(symbols)}}
    target, pred = [], []
    for t, p in zip(truths, preds, strict=True):
        if (len(t) != len(p) or UNKNOWN_SYMBOL in t) and not missing:  # fixed heads, the net's symbols
            raise ValueError(f"read {p!r} of label {t!r}: reads of another length or symbol need missing=True")
        for a, b in itertools.zip_longest(t, p):  # None past the shorter one's end
            target.append(index[None if a == UNKNOWN_SYMBOL else a])
            pred.append(index[b])
    return torch.tensor(target, dtype=torch.long), torch.tensor(pred, dtype=torch.long)


def char_scores(symbols: str, truths: list[str], preds: list[str], *, missing: bool) -> tuple[list[dict], torch.Tensor]:
    """Per-symbol precision/recall/F1/support over every label character, position by position,
    and the (K, K) confusion matrix (rows = truth). With `missing` (CTC nets: a read may be shorter
    or longer than its label) K = C + 1: a too short read predicts MISSING at the label's
    positions it lacks, and characters read past the label's end are predicted against a true
    MISSING (false positives of their symbols). Without it (fixed heads) K = C."""
    target, pred = aligned_classes(symbols, truths, preds, missing)  # (N,), (N,)
    k = len(symbols) + missing
    metrics = {"precision": MulticlassPrecision, "recall": MulticlassRecall, "f1": MulticlassF1Score}
    if len(target):
        scores = {n: m(num_classes=k, average=None, zero_division=0)(pred, target) for n, m in metrics.items()}  # (K,)
        confusion = MulticlassConfusionMatrix(num_classes=k)(pred, target)  # (K, K)
    else:  # neither labels nor reads have a character (e.g. an empty split): nothing to score
        scores, confusion = dict.fromkeys(metrics, torch.zeros(k)), torch.zeros(k, k, dtype=torch.long)
    # The symbols' rows only, so the supports sum to the label characters: MISSING is never read
    # right, and its row counts characters read past a label's end.
    rows = [
        {"char": s, **{n: round(float(v[i]), 4) for n, v in scores.items()}, "support": int(confusion[i].sum())}
        for i, s in enumerate(symbols)
    ]
    return rows, confusion


def confusion_labels(symbols: str, missing: bool) -> list[str]:
    """The confusion matrix's row and column names: the symbols, then MISSING for CTC nets."""
    return [*symbols, *[MISSING] * missing]


def write_char_csvs(out_dir: Path, labels: list[str], rows: list[dict], confusion: torch.Tensor) -> None:
    # UTF-8 whatever the locale: MISSING is not ASCII.
    with writing(out_dir / "per_char.csv") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with writing(out_dir / "confusion_matrix.csv") as f:
        writer = csv.writer(f)
        writer.writerow(["true\\pred", *labels])
        writer.writerows([s, *confusion[i].tolist()] for i, s in enumerate(labels))


def confusion_figure(labels: list[str], confusion: torch.Tensor, title: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(7, 6))
    im = ax.imshow(confusion.numpy(), cmap="Blues")
    ticks = range(len(labels))
    ax.set_xticks(ticks, labels)
    ax.set_yticks(ticks, labels)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    for i, j in zip(*torch.nonzero(confusion, as_tuple=True), strict=True):
        ax.text(j, i, int(confusion[i, j]), ha="center", va="center", fontsize=6)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def misread(truths: list[str], preds: list[str]) -> list[int]:
    """The indices of the captchas read otherwise than labelled."""
    return [i for i, (t, p) in enumerate(zip(truths, preds, strict=True)) if t != p]


def misread_figure(data: LabelledImages, truths: list[str], preds: list[str], limit: int = 24) -> plt.Figure:
    """A grid of misread captchas titled `true -> predicted` (at most `limit`)."""
    wrong = misread(truths, preds)[:limit]
    cols = 4
    rows = max(1, -(-len(wrong) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 2.6, rows * 1.0), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, wrong, strict=False):
        image = data.images[i].permute(1, 2, 0).numpy()  # (H, W, C): colour as the net saw it
        ax.imshow(image[..., 0] if image.shape[2] == 1 else image, cmap="gray", vmin=0, vmax=1)
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
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    for name, data in splits.items():  # one Trainer: its set-up lines are logged once
        results.update(split_metrics(trainer, system, data, name, batch_size))
    data = splits[analysis_split]
    symbols = system.charset.symbols
    truths = system.charset.texts(data.targets)  # shorter labels are padded with PAD
    preds = read_texts(system, data.images, batch_size)
    # Fixed heads read their label's length, but a test folder (data.test_dir) keeps labels of
    # other lengths, scored as misreads: their positions then count against MISSING too.
    missing = system.net.variable_length or any(
        len(t) != len(p) or UNKNOWN_SYMBOL in t for t, p in zip(truths, preds, strict=True)
    )
    rows, confusion = char_scores(symbols, truths, preds, missing=missing)
    labels = confusion_labels(symbols, missing)
    write_char_csvs(out_dir, labels, rows, confusion)
    figures = {
        "confusion_matrix": confusion_figure(labels, confusion, f"{analysis_split}: characters"),
        "misread": misread_figure(data, truths, preds),
    }
    with SummaryWriter(str(out_dir)) as tb:
        for key, value in results.items():
            tb.add_scalar(key, value, 0)
        for name, fig in figures.items():
            fig.savefig(out_dir / f"{name}.png", dpi=90)
            tb.add_figure(f"{analysis_split}/{name}", fig, 0)  # closes the figure
    wrong = [{"name": data.names[i], "true": truths[i], "pred": preds[i]} for i in misread(truths, preds)]
    results.update(
        analysis_split=analysis_split,
        sizes={k: len(v) for k, v in splits.items()},
        per_char=rows,
        confusion_matrix=confusion.tolist(),
        confusion_labels=labels,
        misread=wrong,
    )
    return results
