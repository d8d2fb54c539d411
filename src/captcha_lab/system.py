"""The training system: loss, metrics and optimizer around any net from `captcha_lab.nets`."""

import math
from collections.abc import Callable
from functools import partial
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MaxMetric, MeanMetric, MetricCollection, MinMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassExactMatch

from captcha_lab.charset import PAD, Charset
from captcha_lab.checkpoint import load_net_and_hparams
from captcha_lab.ctc import ctc_loss

OptimizerFactory = Callable[..., torch.optim.Optimizer]
# Called as factory(optimizer, total_steps=N), e.g. a partial of OneCycleLR or warmup_cosine.
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]
CTC_KINDS = {"crnn"}  # nets that emit per-frame logits with a blank class, for CTC
SPLITS = ("train", "val", "test")


def warmup_cosine(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup: float = 0.05
) -> torch.optim.lr_scheduler.LRScheduler:
    """Linear warm-up over the first `warmup` fraction of the steps, then cosine decay to 0."""
    warm = max(1, round(total_steps * warmup))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total_steps - warm))))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class PositionAccuracy(MulticlassAccuracy):
    """Accuracy of one character position (the report's per-head 'dense_k accuracy')."""

    def __init__(self, position: int, num_classes: int, ignore_index: int | None = None):
        super().__init__(num_classes=num_classes, average="micro", ignore_index=ignore_index, validate_args=False)
        self.position = position

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        super().update(preds[:, self.position], target[:, self.position])


def captcha_metrics(num_classes: int, length: int, prefix: str) -> MetricCollection:
    """Metrics on (B, W) index rows where class `num_classes` marks 'no character here' (after the
    end of a label or of a read). char_acc and acc_posK skip positions the label does not have;
    seq_acc needs every position equal, so a read that is too long or too short is wrong."""
    classes, pad = num_classes + 1, num_classes
    metrics = {
        "char_acc": MulticlassAccuracy(classes, average="micro", ignore_index=pad, validate_args=False),
        "seq_acc": MulticlassExactMatch(classes, validate_args=False),
    }
    metrics.update({f"acc_pos{i + 1}": PositionAccuracy(i, classes, pad) for i in range(length)})
    # No compute groups: they share the state of metrics whose states are equal after the first
    # update, which two positions' accuracies can be by chance (same number right), and would
    # then report one position's score for both.
    return MetricCollection(metrics, prefix=prefix, compute_groups=False)


class CaptchaSystem(L.LightningModule):
    """Loss and decoding follow the net's kind: per-position cross-entropy and argmax for fixed
    heads (report_cnn), CTC and greedy decoding for per-frame nets (crnn)."""

    def __init__(
        self,
        net: nn.Module,
        symbols: str,
        optimizer: OptimizerFactory | None = None,
        scheduler: SchedulerFactory | None = None,
        augment: nn.Module | None = None,
        label_smoothing: float = 0.0,
    ):
        super().__init__()
        # Only plain values go into hparams (and checkpoints): the net is rebuilt from its spec.
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler", "augment"])
        self.hparams["net_spec"] = net.spec
        self.net = net
        self.charset = Charset(symbols)
        self.optimizer_factory = optimizer or partial(torch.optim.Adam, lr=1e-3)
        self.scheduler_factory = scheduler
        self.augment = augment  # parameter-free, so checkpoints do not depend on it
        self.ctc = net.spec["kind"] in CTC_KINDS
        self.num_classes, self.length = net.spec["num_classes"], net.spec["length"]
        # Training accuracy (with dropout on, as Keras reports it) is for the report's accuracy
        # plot: no per-position scores. ModuleDict keys may not be "train" (an nn.Module method),
        # hence the suffixes.
        positions = {"train": 0, "val": self.length, "test": self.length}
        self.metrics = nn.ModuleDict(
            {f"{s}_metrics": captcha_metrics(self.num_classes, positions[s], f"{s}/") for s in SPLITS}
        )
        self.losses = nn.ModuleDict({f"{s}_loss": MeanMetric() for s in SPLITS})
        self.val_seq_acc_best, self.val_loss_best = MaxMetric(), MinMetric()
        for best in (self.val_seq_acc_best, self.val_loss_best):
            best.persistent(True)  # saved in checkpoints, so a resumed run keeps its bests

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, L, C) logits, or (B, T, C + 1) for CTC nets

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_probs = self.net.log_probs(logits)
        if self.ctc:
            return ctc_loss(log_probs, target)  # CTC has no label smoothing
        # Mean over the L heads of each head's cross-entropy (Keras sums them; the mean keeps the
        # learning rate independent of the captcha length). cross_entropy re-normalizes
        # log-probabilities to themselves, so this is NLL plus optional label smoothing.
        return F.cross_entropy(
            log_probs.flatten(0, 1),
            target.flatten(),
            ignore_index=PAD,
            label_smoothing=self.hparams.label_smoothing,
        )

    def decode(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits -> (B, L + 1) symbol indices padded with PAD, and (B,) confidences."""
        # One column more than the longest label, so a too-long read stays wrong.
        return self.net.decode(logits, self.length + 1)

    def _as_classes(self, index: torch.Tensor) -> torch.Tensor:
        # (B, <= L + 1) padded with PAD -> (B, L + 1) with the metrics' 'no character' class.
        index = F.pad(index, (0, self.length + 1 - index.shape[1]), value=PAD)
        return torch.where(index == PAD, self.num_classes, index)

    def training_step(self, batch, batch_idx):
        x, y = batch
        if self.augment is not None:
            x = self.augment(x)
        logits = self(x)
        loss = self.loss(logits, y)
        self._update("train", logits.detach(), y, loss.detach())
        return loss

    def _update(self, split: str, logits: torch.Tensor, y: torch.Tensor, loss: torch.Tensor) -> None:
        # update(), not __call__: no per-batch value is computed or logged (that was ~4 ms of
        # Python per training step); _log_epoch logs the epoch's values once.
        self.losses[f"{split}_loss"].update(loss, weight=len(y))
        self.metrics[f"{split}_metrics"].update(self._as_classes(self.decode(logits)[0]), self._as_classes(y))

    def _eval_step(self, batch, split: str) -> None:
        x, y = batch
        logits = self(x)
        self._update(split, logits, y, self.loss(logits, y))

    @property
    def logged_names(self) -> set[str]:
        """Every metric name this system logs: what a callback may monitor."""
        names = {f"{split}/loss" for split in SPLITS} | {"val/seq_acc_best", "val/loss_best", "val/ckpt_score"}
        return names.union(*(m.keys() for m in self.metrics.values()))

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, "test")

    def _log_global(self, name: str, value: torch.Tensor, prog_bar: bool = False) -> None:
        # Metrics' compute() gathers every rank's counts, so under DDP each rank holds the same
        # global value. Syncing it again with max keeps it exact (a mean of equal float32 numbers
        # over 3+ ranks can move the last bit), is a no-op on one device, and stops Lightning's
        # warning that epoch-level values are logged without sync_dist.
        self.log(name, value, prog_bar=prog_bar, sync_dist=True, reduce_fx="max")

    def _log_epoch(self, split: str) -> dict[str, torch.Tensor]:
        loss, metrics = self.losses[f"{split}_loss"], self.metrics[f"{split}_metrics"]
        if loss.update_count == 0:
            # An epoch without batches here: resumed from interrupted.ckpt saved during the
            # epoch's validation, after its last training batch. Logging would write NaN and 0s.
            return {}
        values = {f"{split}/loss": loss.compute(), **metrics.compute()}
        loss.reset()
        metrics.reset()
        for name, value in values.items():  # the progress bar shows the train loss, as before
            self._log_global(name, value, prog_bar=name == "train/loss")
        return values

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def on_validation_epoch_end(self) -> None:
        values = self._log_epoch("val")
        if values and not self.trainer.sanity_checking:
            self.val_seq_acc_best(values["val/seq_acc"])
            self.val_loss_best(values["val/loss"])
            self._log_global("val/seq_acc_best", self.val_seq_acc_best.compute(), prog_bar=True)
            self._log_global("val/loss_best", self.val_loss_best.compute())
            self._log_global("val/ckpt_score", ckpt_score(values["val/seq_acc"], values["val/char_acc"]))

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer, total_steps=int(self.trainer.estimated_stepping_batches))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def ckpt_score(seq_acc: torch.Tensor, char_acc: torch.Tensor) -> torch.Tensor:
    """What best.ckpt is chosen by: seq_acc, ties (e.g. all 0 early on) broken by char_acc."""
    # In float64: in float32 the 1e-6 * char_acc would be lost below seq_acc's last bit once
    # seq_acc > ~0.06 (float32 steps are 6e-8 near 1), and Lightning keeps the earlier epoch of a tie.
    return seq_acc.double() + 1e-6 * char_acc.double()


def load_system(
    path: str | Path, map_location: str | torch.device = "cpu", symbols: str | None = None, kind: str | None = None
) -> CaptchaSystem:
    """A trained CaptchaSystem in eval mode; `symbols`/`kind`, when given, must match the checkpoint's.
    Its loss is the one it trained with (label smoothing included), as metrics.json reports it."""
    net, hparams = load_net_and_hparams(path, map_location, symbols, kind)
    return CaptchaSystem(
        net=net, symbols=hparams["symbols"], label_smoothing=hparams.get("label_smoothing", 0.0)
    ).eval()
