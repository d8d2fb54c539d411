"""A run's figures and a sweep's overlays (analysis.plots), from what the runs logged, and drawn again (replot)."""

import shutil

import matplotlib.pyplot as plt
import pytest

from captcha_lab.analysis.plots import _plot, plot_run, plot_sweep
from captcha_lab.analysis.runs import read_history
from captcha_lab.analysis.sweep import job_labels, replot
from captcha_lab.errors import DataError


def test_run_and_sweep_plots(tiny_run, tmp_path):
    for png in ("loss.png", "accuracy.png"):
        assert (tiny_run / png).stat().st_size > 5000
    history = read_history(tiny_run)
    assert sorted(history["train/loss"]) == sorted(history["val/seq_acc"]) == [1, 2, 3]
    assert sorted(history["train/char_acc"]) == [1, 2, 3]

    sweep = tmp_path / "sweep"
    for job in ("0_a", "1_b"):
        shutil.copytree(tiny_run, sweep / job, ignore=shutil.ignore_patterns("checkpoints"))
    labels = job_labels({"0_a": "optimizer=adam epochs=3", "1_b": "optimizer=sgd epochs=3"})
    assert labels == {"0_a": "optimizer=adam", "1_b": "optimizer=sgd"}
    written = plot_sweep(sweep, labels)
    assert [p.name for p in written] == ["val_seq_acc.png", "val_char_acc.png", "val_loss.png"]
    assert all(p.stat().st_size > 5000 for p in written)
    assert plot_run(tmp_path / "empty_run_dir_without_events") == []
    assert [p.name for p in replot(str(tiny_run))] == ["loss.png", "accuracy.png"]
    assert {p.name for p in replot(str(sweep))} == {"val_seq_acc.png", "val_char_acc.png", "val_loss.png"}
    (tmp_path / "no_run").mkdir()
    for folder, message in [(tmp_path / "nope", "not a folder"), (tmp_path / "no_run", "holds neither a run")]:
        with pytest.raises(DataError, match=f"^{folder}: {message}"):
            replot(str(folder))
    assert not list((tmp_path / "no_run").iterdir())  # no empty summaries written into it


def test_epoch_axis_ticks_are_whole_epochs(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)  # keep the figure _plot draws
    _plot(tmp_path / "loss.png", "loss", "loss", {"train": {1: 0.5, 2: 0.4, 3: 0.3}})
    ticks = figures[0].axes[0].get_xticks()
    assert len(ticks) and all(t == int(t) for t in ticks), ticks  # not 1.25, 1.5, ...
