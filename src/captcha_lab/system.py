"""The training system: loss, metrics and optimizer around any net from `captcha_lab.nets`."""

from collections.abc import Callable
from functools import partial

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MaxMetric, MeanMetric, MetricCollection, MinMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassExactMatch

from captcha_lab.charset import Charset

OptimizerFactory = Callable[..., torch.optim.Optimizer]


class PositionAccuracy(MulticlassAccuracy):
    """Accuracy of one character position (the report's per-head 'dense_k accuracy')."""

    def __init__(self, position: int, num_classes: int):
        super().__init__(num_classes=num_classes, average="micro", validate_args=False)
        self.position = position

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        super().update(preds[:, self.position], target[:, self.position])


def captcha_metrics(num_classes: int, length: int, prefix: str) -> MetricCollection:
    metrics = {
        "char_acc": MulticlassAccuracy(num_classes=num_classes, average="micro", validate_args=False),
        "seq_acc": MulticlassExactMatch(num_classes=num_classes, validate_args=False),  # all L right
    }
    metrics.update({f"acc_pos{i + 1}": PositionAccuracy(i, num_classes) for i in range(length)})
    return MetricCollection(metrics, prefix=prefix)


class CaptchaSystem(L.LightningModule):
    def __init__(self, net: nn.Module, symbols: str, optimizer: OptimizerFactory | None = None):
        super().__init__()
        # Only plain values go into hparams (and checkpoints): the net is rebuilt from its spec.
        self.save_hyperparameters(ignore=["net", "optimizer"])
        self.hparams["net_spec"] = net.spec
        self.net = net
        self.charset = Charset(symbols)
        self.optimizer_factory = optimizer or partial(torch.optim.Adam, lr=1e-3)
        num_classes, length = net.spec["num_classes"], net.spec["length"]
        self.metrics = nn.ModuleDict({s: captcha_metrics(num_classes, length, f"{s}/") for s in ("val", "test")})
        # Training accuracy (with dropout on, as Keras reports it) for the report's accuracy plot.
        self.train_metrics = captcha_metrics(num_classes, 0, "train/")
        # ModuleDict keys may not be "train" (an nn.Module method), hence the suffix.
        self.losses = nn.ModuleDict({f"{s}_loss": MeanMetric() for s in ("train", "val", "test")})
        self.val_seq_acc_best, self.val_loss_best = MaxMetric(), MinMetric()
        for best in (self.val_seq_acc_best, self.val_loss_best):
            best.persistent(True)  # saved in checkpoints, so a resumed run keeps its bests

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, L, C) logits

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        # Mean over the L heads of each head's cross-entropy (Keras sums them; the mean keeps the
        # learning rate independent of the captcha length).
        return F.nll_loss(self.net.log_probs(logits).flatten(0, 1), target.flatten())

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        loss = self.loss(logits, y)
        self.losses["train_loss"](loss, weight=len(x))
        self.log("train/loss", self.losses["train_loss"], on_step=False, on_epoch=True, prog_bar=True)
        self.train_metrics(logits.detach().argmax(-1), y)
        self.log_dict(self.train_metrics, on_step=False, on_epoch=True)
        return loss

    def _eval_step(self, batch, split: str) -> None:
        x, y = batch
        logits = self(x)
        self.losses[f"{split}_loss"](self.loss(logits, y), weight=len(x))
        self.metrics[split](logits.argmax(-1), y)  # (B, L) predicted indices

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, "test")

    def _log_eval(self, split: str) -> dict[str, torch.Tensor]:
        values = {f"{split}/loss": self.losses[f"{split}_loss"].compute(), **self.metrics[split].compute()}
        self.losses[f"{split}_loss"].reset()
        self.metrics[split].reset()
        self.log_dict(values, prog_bar=False)
        return values

    def on_validation_epoch_end(self) -> None:
        values = self._log_eval("val")
        if not self.trainer.sanity_checking:
            self.val_seq_acc_best(values["val/seq_acc"])
            self.val_loss_best(values["val/loss"])
            self.log("val/seq_acc_best", self.val_seq_acc_best.compute(), prog_bar=True)
            self.log("val/loss_best", self.val_loss_best.compute())
            # What best.ckpt is chosen by: seq_acc, ties (e.g. all 0 early on) broken by char_acc.
            self.log("val/ckpt_score", values["val/seq_acc"] + 1e-6 * values["val/char_acc"])

    def on_test_epoch_end(self) -> None:
        self._log_eval("test")

    def configure_optimizers(self):
        return self.optimizer_factory(self.parameters())

    @torch.no_grad()
    def predict_text(self, x: torch.Tensor) -> tuple[list[str], torch.Tensor]:
        """(B, 1, H, W) images -> B strings and (B,) confidences (product of per-position maxima)."""
        log_probs = self.net.log_probs(self(x))  # (B, L, C)
        best, index = log_probs.max(-1)  # (B, L)
        return [self.charset.decode(row) for row in index], best.sum(-1).exp()
