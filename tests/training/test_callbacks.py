"""Our Lightning callbacks: epoch timing, the best checkpoint over a resume, per-rank seeds, Ctrl-C."""

import logging
import time
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Checkpoint, ModelCheckpoint
from lightning.pytorch.demos.boring_classes import BoringModel
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from captcha_lab.training.callbacks import BestCheckpoint, EpochTimer, InterruptCheckpoint, RankSeed


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


def test_epoch_timer_steady_state_is_the_median_after_the_first_epoch():
    timer = EpochTimer()
    assert timer.steady_state is None  # nothing timed
    timer.times = [9.0]
    assert timer.steady_state == 9.0  # one epoch: itself
    timer.times = [9.0, 1.0, 5.0, 2.0]  # the first pays the one-off warm-up; left out
    assert timer.steady_state == 2.0


def test_best_checkpoint_carries_its_best_over_a_resume_into_another_dir(tmp_path, caplog):
    earlier, here = tmp_path / "run1" / "checkpoints", tmp_path / "run2" / "checkpoints"
    earlier.mkdir(parents=True)
    (earlier / "best.ckpt").write_bytes(b"epoch 7's weights")
    saved = ModelCheckpoint(dirpath=earlier, filename="best", monitor="val/ckpt_score", mode="max")
    saved.best_model_path, saved.best_model_score = str(earlier / "best.ckpt"), torch.tensor(0.98, dtype=torch.float64)
    resumed = BestCheckpoint(dirpath=here, filename="best", monitor="val/ckpt_score", mode="max")
    assert resumed.state_key == saved.state_key  # so checkpoints written before this class resume too
    resumed.load_state_dict(saved.state_dict())
    assert (here / "best.ckpt").read_bytes() == b"epoch 7's weights" == (earlier / "best.ckpt").read_bytes()
    assert resumed.best_model_path == str(here / "best.ckpt") and resumed.best_model_score == saved.best_model_score
    assert resumed.best_k_models == {str(here / "best.ckpt"): saved.best_model_score}
    assert sorted(p.name for p in here.iterdir()) == ["best.ckpt"]  # no temporary file left
    copied = (here / "best.ckpt").stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="captcha_lab.training.callbacks"):
        resumed.load_state_dict(saved.state_dict())  # trainer.test(ckpt_path=best) restores it again
    assert (here / "best.ckpt").stat().st_mtime_ns == copied and "resumed the best" not in caplog.text
    assert resumed.best_model_path == str(here / "best.ckpt")
    in_place = BestCheckpoint(dirpath=earlier, filename="best", monitor="val/ckpt_score", mode="max")
    in_place.load_state_dict(saved.state_dict())  # the same dir: Lightning's own restore
    assert in_place.best_model_score == saved.best_model_score and in_place.best_model_path == saved.best_model_path


def test_rank_seed_gives_each_ddp_rank_its_own_draws_and_leaves_one_device_alone():
    def draws(world_size: int, rank: int) -> torch.Tensor:
        torch.manual_seed(7)  # what seed_everything gave every rank
        torch.rand(1)  # the initial weights' draws
        RankSeed(7).on_train_start(SimpleNamespace(world_size=world_size, global_rank=rank), None)
        return torch.rand(4)

    assert not torch.equal(draws(2, 0), draws(2, 1))  # e.g. each rank its own dropout masks
    rank_1 = torch.Generator().manual_seed(8)
    assert torch.equal(draws(3, 1), torch.rand(4, generator=rank_1))  # rank k: seed + k
    untouched = torch.Generator().manual_seed(7)
    torch.rand(1, generator=untouched)
    assert torch.equal(draws(1, 0), torch.rand(4, generator=untouched))  # one device: the stream goes on


@pytest.mark.parametrize(
    "fn,step,exception,message",
    [
        (TrainerFn.FITTING, 0, KeyboardInterrupt(), "interrupted before the first training step: nothing to save"),
        # The test runs best.ckpt's weights: saved as interrupted.ckpt with the last step's
        # optimizer, a resume from it went on from the best epoch's, the epochs after it lost.
        (TrainerFn.TESTING, 21, SIGTERMException(), "interrupted during test: nothing to save; last.ckpt holds the"),
    ],
)
def test_an_interrupt_with_nothing_to_resume_saves_nothing(tmp_path, caplog, fn, step, exception, message):
    state = SimpleNamespace(fn=fn)
    trainer = SimpleNamespace(state=state, global_step=step, save_checkpoint=lambda path: pytest.fail("saved"))
    with caplog.at_level(logging.WARNING, logger="captcha_lab.training.callbacks"):
        InterruptCheckpoint(str(tmp_path)).on_exception(trainer, None, exception)
    assert message in caplog.text
    assert not list(tmp_path.iterdir())
