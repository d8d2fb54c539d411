"""The training system: loss, metrics and optimizer around any net from captcha_lab.models."""

import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MaxMetric, MeanMetric, MinMetric

from captcha_lab.data.charset import PAD, UNKNOWN, Charset
from captcha_lab.errors import ConfigError
from captcha_lab.models.base import CaptchaNet
from captcha_lab.models.checkpoint import load_net_and_hparams
from captcha_lab.training.eval_weights import EvalWeights
from captcha_lab.training.metrics import CaptchaAccuracy, ckpt_score

OptimizerFactory = Callable[..., torch.optim.Optimizer]
# Called as factory(optimizer, total_steps=N), e.g. a partial of OneCycleLR or warmup_cosine.
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]
SPLITS = ("train", "val", "test")


def factory_settings(factory: Callable | None) -> dict:
    """A factory's class and plain settings (a partial's lr, weight_decay, max_lr, ...), kept in
    checkpoints: a resume at other settings would train on at the checkpoint's (its optimizer
    state holds them) under the new run's name (training.resume)."""
    if not isinstance(factory, partial):
        return {}
    plain = {k: v for k, v in factory.keywords.items() if isinstance(v, int | float | str | bool)}
    return {"class": getattr(factory.func, "__name__", repr(factory.func)), **plain}


class CaptchaSystem(L.LightningModule):
    """Loss and decoding are the net's own (its family in models.decoding): this class adds the
    optimizer, the schedule, augmentation and the metrics, whatever the net."""

    def __init__(
        self,
        net: CaptchaNet,
        symbols: str,
        optimizer: OptimizerFactory | None = None,
        scheduler: SchedulerFactory | None = None,
        augment: nn.Module | None = None,
        label_smoothing: float = 0.0,
    ):
        super().__init__()
        if label_smoothing and not net.label_smoothing:
            raise ValueError(f"label_smoothing: {net.decoding} decoding has none, got {label_smoothing}")
        # Only plain values go into hparams (and checkpoints): the net is rebuilt from its spec.
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler", "augment"])
        self.optimizer_factory = optimizer or partial(torch.optim.Adam, lr=1e-3)
        self.scheduler_factory = scheduler
        # Saved as hyper-parameters again, not set in self.hparams: Lightning logs (hparams.yaml)
        # only what save_hyperparameters saw.
        self.save_hyperparameters(
            {
                "net_spec": net.spec,
                "optimizer_settings": factory_settings(self.optimizer_factory),
                "scheduler_settings": factory_settings(scheduler),
            }
        )
        self.net = net
        # One blank image: Lightning's model summary then lists each part's in/out sizes and FLOPs.
        # requires_grad: a net runs its fused CPU kernels (models.kernels) only on images that need
        # no gradient, and the summary's FLOP counter sees PyTorch's own ops only.
        image = torch.zeros(1, net.spec["in_channels"], *net.spec["image_size"], requires_grad=True)
        self.example_input_array = image
        self.charset = Charset(symbols)
        self.augment = augment  # parameter-free, so checkpoints do not depend on it
        self.eval_weights = EvalWeights()  # for optimizers that evaluate at averaged weights
        self.length = net.spec["length"]
        # Training accuracy (with dropout on, as Keras reports it) is for the report's accuracy
        # plot: no per-position scores. ModuleDict keys may not be "train" (an nn.Module method),
        # hence the suffixes. Reads are compared one column past the longest label.
        positions = {"train": 0, "val": self.length, "test": self.length}
        self.metrics = nn.ModuleDict(
            {f"{s}_metrics": CaptchaAccuracy(self.length + 1, f"{s}/", positions[s]) for s in SPLITS}
        )
        self.losses = nn.ModuleDict({f"{s}_loss": MeanMetric() for s in SPLITS})
        self.val_seq_acc_best, self.val_loss_best = MaxMetric(), MinMetric()
        for best in (self.val_seq_acc_best, self.val_loss_best):
            best.persistent(True)  # saved in checkpoints, so a resumed run keeps its bests

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, L, C) logits, or (B, T, C + 1) for CTC nets

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.net.loss(logits, target, self.hparams.label_smoothing)

    def decode(self, logits: torch.Tensor, fit_lengths: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits -> (B, L + 1) symbol indices padded with PAD, and (B,) confidences."""
        # One column more than the longest label, so a too-long read stays wrong.
        return self.net.decode(logits, self.length + 1, fit_lengths)

    def _padded(self, index: torch.Tensor) -> torch.Tensor:
        """(B, <= L + 1) reads or labels padded with PAD -> (B, L + 1), as the metrics compare them."""
        return F.pad(index, (0, self.length + 1 - index.shape[1]), value=PAD)

    def training_step(self, batch, batch_idx):
        x, y = batch
        if self.augment is not None:
            x = self.augment(x)
        self.eval_weights.remember(x)
        logits = self(x)
        loss = self.loss(logits, y)
        self._update("train", logits.detach(), y, loss.detach())
        return loss

    def _update(self, split: str, logits: torch.Tensor, y: torch.Tensor, loss: torch.Tensor) -> None:
        # update(), not __call__: no per-batch value is computed or logged, which would cost a
        # metric computation per step; _log_epoch logs the epoch's values once.
        self.losses[f"{split}_loss"].update(loss, weight=len(y))
        self._update_metrics(split, logits, y)

    def _update_metrics(self, split: str, logits: torch.Tensor, y: torch.Tensor) -> None:
        # Training reads are each frame's best class: fitting CTC reads to the label lengths
        # (models.ctc_lengths) would cost every step of the first, all-blank epochs a Viterbi
        # pass; validation, test and the readers fit them.
        read = self.decode(logits, fit_lengths=split != "train")[0]
        self.metrics[f"{split}_metrics"].update(self._padded(read), self._padded(y))

    def _eval_step(self, batch, split: str) -> None:
        x, y = batch
        logits = self(x)
        # A test label with a symbol the net cannot write, or longer than it reads (a test folder's
        # targets have one column more), has no loss: its rows are left out of it (and only count,
        # as misreads, in the accuracies).
        writable = (y != UNKNOWN).all(1) & (y[:, self.length :] == PAD).all(1)  # (B,)
        if writable.any():
            loss = self.loss(logits[writable], y[writable, : self.length])
            self.losses[f"{split}_loss"].update(loss, weight=int(writable.sum()))
        self._update_metrics(split, logits, y)

    @property
    def logged_names(self) -> set[str]:
        """Every metric name this system logs: what a callback may monitor."""
        names = {f"{split}/loss" for split in SPLITS} | {"val/seq_acc_best", "val/loss_best", "val/ckpt_score"}
        return names.union(*(m.names for m in self.metrics.values()))

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
        if metrics.update_count == 0:
            # An epoch without batches here: resumed from interrupted.ckpt saved during the
            # epoch's validation, after its last training batch. Logging would write NaN and zeros.
            return {}
        with warnings.catch_warnings():
            # Batches whose every label has a symbol the net cannot write leave the loss without
            # an update here (_eval_step), maybe on this rank only: compute() still gathers with
            # the other ranks, and is NaN where no rank had an update. The accuracies count them.
            warnings.filterwarnings("ignore", "The ``compute`` method of metric MeanMetric was called before")
            values = {f"{split}/loss": loss.compute(), **metrics.compute()}
        loss.reset()
        metrics.reset()
        for name, value in values.items():  # the progress bar shows the train loss
            self._log_global(name, value, prog_bar=name == "train/loss")
        return values

    def on_train_start(self) -> None:
        # After a resume restored the schedule: OneCycleLR keeps its own length, and a run made
        # longer (more epochs) would step past its end with a ValueError in the middle of an epoch.
        steps = self.trainer.estimated_stepping_batches
        for config in self.trainer.lr_scheduler_configs:
            total = getattr(config.scheduler, "total_steps", None)
            if total is not None and total < steps:
                raise ConfigError(
                    f"epochs: the resumed {type(config.scheduler).__name__} schedule ends after {total} steps, this"
                    f" run takes {steps:.0f}; resume with the run's epochs, or start afresh with ckpt_init="
                )

    def on_train_batch_start(self, batch, batch_idx) -> None:
        # Before every step, not every epoch: validation may also come within an epoch.
        self.eval_weights.train(self.trainer.optimizers)

    def on_validation_epoch_start(self) -> None:
        # Validated, checkpointed and exported at the optimizer's evaluation weights, if it has any.
        self.eval_weights.eval(self.trainer.optimizers, self.net)

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


def load_system(
    path: str | Path, map_location: str | torch.device = "cpu", symbols: str | None = None, kind: str | None = None
) -> CaptchaSystem:
    """A trained CaptchaSystem in eval mode; `symbols`/`kind`, when given, must match the checkpoint's.
    Its loss is the one it trained with (label smoothing included), as metrics.json reports it."""
    net, hparams = load_net_and_hparams(path, map_location, symbols, kind)
    return CaptchaSystem(net=net, symbols=hparams["symbols"], label_smoothing=hparams["label_smoothing"]).eval()
