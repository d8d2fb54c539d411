import time

import lightning as L
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.demos.boring_classes import BoringModel

from captcha_lab.callbacks import EpochTimer


class SlowCheckpoint(Checkpoint):
    """Saves for 0.2 s at each epoch's end; Lightning runs it after every other callback's hook."""

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        time.sleep(0.2)


def test_epoch_timer_counts_the_checkpoints_written_after_it(tmp_path):
    timer = EpochTimer()
    trainer = L.Trainer(
        max_epochs=3,
        limit_train_batches=2,
        limit_val_batches=1,
        callbacks=[timer, SlowCheckpoint()],
        logger=False,
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(BoringModel())
    assert len(timer.times) == 3
    assert min(timer.times) >= 0.2
