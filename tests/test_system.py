from pathlib import Path

import pytest
import torch

from captcha_lab.pipeline import train
from captcha_lab.system import ckpt_score


@pytest.mark.parametrize("seq_acc", [0.0, 0.5, 0.977])
def test_ckpt_score_breaks_ties_by_char_acc_at_any_seq_acc(seq_acc):
    seq = torch.tensor(seq_acc)  # float32, as torchmetrics computes it
    assert ckpt_score(seq, torch.tensor(0.9908)) > ckpt_score(seq, torch.tensor(0.9897))
    assert ckpt_score(seq + 1 / 174, torch.tensor(0.0)) > ckpt_score(seq, torch.tensor(1.0))


def test_best_checkpoint_keeps_the_score_in_float64(make_cfg):
    # Lightning would store a float32 score as float32, and compare later epochs against that.
    train(make_cfg("epochs=1"))
    ckpt = torch.load(Path(make_cfg().hydra.runtime.output_dir) / "checkpoints" / "best.ckpt", weights_only=False)
    (state,) = [v for k, v in ckpt["callbacks"].items() if "val/ckpt_score" in k]
    assert state["best_model_score"].dtype == torch.float64
