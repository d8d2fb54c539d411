"""A run's figures and a sweep's overlays (analysis.plots), from what the runs logged, and drawn again (replot);
a seed sweep's mean lines, bands and mean runs."""

import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from captcha_lab.analysis.plots import _plot, plot_run, plot_sweep
from captcha_lab.analysis.runs import read_history
from captcha_lab.analysis.sweep import job_labels, recipe_labels, replot, summarize_sweep
from captcha_lab.errors import DataError

from .fake_sweep import make_job, write_events


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


def test_a_one_epoch_curve_is_drawn_as_a_point(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    _plot(tmp_path / "loss.png", "loss", "loss", {"one epoch": {1: 0.5}, "three": {1: 0.5, 2: 0.4, 3: 0.3}})
    one, three = figures[0].axes[0].get_lines()
    assert (one.get_marker(), three.get_marker()) == ("o", "None")  # a line alone would not show


def test_a_runs_figures_draw_each_curve_under_its_own_name(tmp_path, monkeypatch):
    """loss.png and accuracy.png each draw their train and val curves from their own tags: none
    drawn twice, swapped with another or left out."""
    curves = {
        "train/loss": [2.0, 1.5, 1.0],
        "val/loss": [2.5, 2.0, 1.75],
        "train/char_acc": [0.25, 0.5, 0.75],
        "val/char_acc": [0.125, 0.375, 0.625],
        "train/seq_acc": [0.0, 0.125, 0.5],
        "val/seq_acc": [0.0, 0.0625, 0.25],
    }
    write_events(tmp_path, curves)
    saved = {}
    monkeypatch.setattr(plt.Figure, "savefig", lambda fig, path, **kw: saved.setdefault(Path(path).name, fig))
    assert [p.name for p in plot_run(tmp_path)] == ["loss.png", "accuracy.png"]
    for png, tags in [("loss.png", ["train/loss", "val/loss"]), ("accuracy.png", list(curves)[2:])]:
        lines = saved[png].axes[0].get_lines()
        assert {line.get_label(): list(line.get_ydata()) for line in lines} == {tag: curves[tag] for tag in tags}
        assert all(list(line.get_xdata()) == [1, 2, 3] for line in lines)  # epochs from 1


def drawn(monkeypatch) -> list:
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)  # keep the figures the plots draw
    return figures


def test_seed_sweep_overlay_has_one_mean_line_with_a_band_per_recipe(tmp_path, monkeypatch):
    for i, (seed, opt) in enumerate((s, o) for s in range(3) for o in ("adam", "sgd")):
        curve = [0.1 * (seed + 1) * e for e in range(4)] if opt == "adam" else [0.0] * 4
        make_job(tmp_path, f"{i}_{opt}", [f"seed={seed}", f"optimizer={opt}"], {}, {"val/seq_acc": curve})
    figures = drawn(monkeypatch)
    summarize_sweep(tmp_path)  # labels the jobs by recipe, then plots
    assert len(figures) == 1  # val/seq_acc only: no other curve was logged
    ax = figures[0].axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["optimizer=adam (mean of 3)", "optimizer=sgd (mean of 3)"]
    assert list(ax.get_lines()[0].get_ydata()) == pytest.approx([0.0, 0.2, 0.4, 0.6])  # seeds' mean per epoch
    assert len(ax.collections) == 2 and "min-max" in ax.get_title()  # one band per recipe
    # The same means for TensorBoard, one run per recipe, each read back like any run.
    assert sorted(p.name for p in (tmp_path / "mean_runs").iterdir()) == ["optimizer=adam", "optimizer=sgd"]
    mean = read_history(tmp_path / "mean_runs" / "optimizer=adam")["val/seq_acc"]
    assert list(mean) == [1, 2, 3, 4] and list(mean.values()) == pytest.approx([0.0, 0.2, 0.4, 0.6])


def test_a_stopped_job_is_drawn_and_listed_with_its_recipe(tmp_path, monkeypatch):
    # Seed 1 stopped (SIGTERM) after 2 epochs: no metrics.json, but its curve is logged.
    make_job(tmp_path, "0_job", ["seed=0", "epochs=4"], {}, {"val/seq_acc": [0.1, 0.2, 0.3, 0.4]})
    stopped = make_job(tmp_path, "1_job", ["seed=1", "epochs=4"], {}, {"val/seq_acc": [0.3, 0.4]})
    (stopped / "metrics.json").unlink()
    figures = drawn(monkeypatch)
    summarize_sweep(tmp_path)
    (line,) = figures[0].axes[0].get_lines()
    assert line.get_label() == "all runs (mean of 2)"
    assert list(line.get_ydata()) == pytest.approx([0.2, 0.3, 0.3, 0.4])  # the stopped one while it ran
    assert "\n| seed=1 | " in (tmp_path / "curves.md").read_text()  # its row, not its folder name


def test_single_seed_sweep_overlay_has_one_line_per_job_and_no_band(tmp_path, monkeypatch):
    for i, lr in enumerate(("1e-3", "1e-2")):
        make_job(tmp_path, f"{i}_job", [f"lr={lr}", "epochs=3"], {}, {"val/seq_acc": [0.0, 0.1, 0.2]})
    figures = drawn(monkeypatch)
    plot_sweep(tmp_path, recipe_labels({f"{i}_job": f"lr={lr} epochs=3" for i, lr in enumerate(("1e-3", "1e-2"))}))
    ax = figures[0].axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["lr=1e-3", "lr=1e-2"] and not ax.collections


def test_a_seed_sweep_of_one_recipe_is_one_line(tmp_path):
    assert set(recipe_labels({f"{s}_job": f"seed={s} lr=1e-3" for s in range(3)}).values()) == {"all runs"}
