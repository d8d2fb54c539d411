"""The bench scripts are not run by the tests (they take minutes), but they must at least start: a name moved in
the package would otherwise break them unnoticed. Each runs as its own __main__ in this process (torch is loaded
already), as `python bench/X.py --help` would."""

import re
import runpy
import subprocess
import sys

import pytest

from .conftest import ROOT

SCRIPTS = sorted(p.name for p in (ROOT / "bench").glob("*.py") if not p.name.startswith("_"))  # _x.py: helpers


def load(monkeypatch, script: str) -> dict:
    """A bench script's globals, as imported (not run), with its own folder first on sys.path as
    when it runs (for its `_x.py` helpers)."""
    monkeypatch.setattr(sys, "path", [str(ROOT / "bench"), *sys.path])
    return runpy.run_path(str(ROOT / "bench" / script))


def run_as_main(monkeypatch, script: str, *args: str) -> SystemExit:
    """`python bench/SCRIPT ARGS`, in this process: the SystemExit it ends with."""
    path = str(ROOT / "bench" / script)
    monkeypatch.setattr(sys, "argv", [path, *args])
    monkeypatch.setattr(sys, "path", [str(ROOT / "bench"), *sys.path])
    with pytest.raises(SystemExit) as stopped:
        runpy.run_path(path, run_name="__main__")
    return stopped.value


def test_the_scripts_are_found():  # else the test below would pass on none
    assert {"bench.py", "onnx_inference.py", "onnx_agreement.py"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_bench_script_starts(script, monkeypatch, capsys):
    assert run_as_main(monkeypatch, script, "--help").code == 0
    assert capsys.readouterr().out.startswith("usage: ")


def fold(accs: list[float], epoch_s: float = 1.0) -> dict:
    """A fold's curve as time_to_accuracy.fold_result gives it: val seq_acc and training time so far, per epoch."""
    epochs = range(1, len(accs) + 1)
    return {"acc": dict(zip(epochs, accs, strict=True)), "elapsed": {e: e * epoch_s for e in epochs}}


def test_time_to_accuracy_reads_the_folds_mean_curve(monkeypatch):
    tta = load(monkeypatch, "time_to_accuracy.py")
    # Neither fold alone decides it: the first fold is at 1.0 from epoch 2, but the mean only
    # passes 0.99 at epoch 3.
    folds = [fold([0.0, 1.0, 1.0], epoch_s=2.0), fold([0.0, 0.96, 0.99], epoch_s=1.0)]
    assert tta["mean_curve"](folds) == pytest.approx({1: 0.0, 2: 0.98, 3: 0.995})
    assert tta["mean_curve_reaches"](folds, 0.99) == (3, 4.5)  # epoch 3, after (6 + 3) / 2 s
    assert tta["mean_curve_reaches"](folds, 0.999) is None


def test_time_to_accuracy_reads_a_folds_run(monkeypatch, tmp_path):
    tta = load(monkeypatch, "time_to_accuracy.py")
    history = {
        "perf/epoch_s": {1: 2.0, 2: 3.0, 3: 4.0},  # epoch 3 trained, its validation never logged
        "val/seq_acc": {1: 0.5, 2: 0.99},
        "val/char_acc": {1: 0.6, 2: 0.998},
    }
    monkeypatch.setattr("captcha_lab.analysis.runs.read_history", lambda run: history)
    (tmp_path / "timing.json").write_text('{"wall_s": 12.5}')
    r = tta["fold_result"](tmp_path, 0.99)
    assert r["reached"] == (2, 5.0)  # at the target counts, after the time of epochs 1 and 2 together
    assert (r["seq"], r["char"], r["epochs"]) == (0.99, 0.998, 2)  # the last validated epoch's scores
    assert (r["train_s"], r["wall_s"]) == (9.0, 12.5)  # every timed epoch's training
    assert tta["fold_result"](tmp_path, 0.995)["reached"] is None
    # An epoch validated but not timed stays out of the folds' mean curve.
    untimed = {**fold([0.5, 1.0]), "acc": {1: 0.5, 2: 1.0, 3: 1.0}}
    assert list(tta["mean_curve"]([untimed, fold([0.5, 1.0, 1.0])])) == [1, 2]
    assert tta["mean_curve_reaches"]([fold([0.5, 0.99]), fold([0.5, 0.99])], 0.99) == (2, 2.0)  # exactly at it


def test_time_to_accuracy_goal_lines_at_the_bar_are_met(monkeypatch, capsys):
    tta = load(monkeypatch, "time_to_accuracy.py")
    summaries = {"fast": dict(train_s=20.0, mean_reached=(9, 9.5), per_seed={0: (9, 9.5), 1: (8, 9.5)}, stuck=0)}
    tta["print_goals"](summaries, tta["parse_args"](["--data", "d", "--recipe", "x=y", "--goal-s", "9.5"]))
    out = capsys.readouterr().out
    assert "within 9.5 s of training per fold, no fold stuck: MET\n  and on each seed's folds alone: MET" in out


def test_time_to_accuracy_summary_means_the_folds_and_counts_a_fold_at_the_stuck_line(monkeypatch, capsys):
    tta = load(monkeypatch, "time_to_accuracy.py")
    results = {}
    for key, (accs, train_s) in {(0, 0): ([0.0, 0.01], 2.0), (0, 1): ([0.5, 1.0], 4.0)}.items():
        results[key] = {**fold(accs), "seq": accs[-1], "char": accs[-1], "train_s": train_s, "wall_s": 5.0}
        results[key].update(epochs=2, reached=(2, 2.0) if accs[-1] >= 0.99 else None)
    summary = tta["report"]("r", results, 0.99)
    assert summary["train_s"] == 3.0  # the folds' mean: the bar of --goal-cut
    assert summary["stuck"] == 1  # best val seq_acc 0.01: one captcha right in a hundred, still stuck
    assert "| 0 | 1 | 2 | 4.0 | 5.0 | 2 | 2.0 | 1.0000 | 1.0000 |" in capsys.readouterr().out


def test_time_to_accuracy_takes_recipes_with_other_seeds_than_seed(monkeypatch):
    tta = load(monkeypatch, "time_to_accuracy.py")
    args = tta["parse_args"](["--data", "d", "--recipe", "a=data.synthetic_seed=3"])
    assert tta["recipes_of"](args) == {"a": "data.synthetic_seed=3"}


def test_time_to_accuracy_goal_as_a_cut_from_the_baseline(monkeypatch, capsys):
    tta = load(monkeypatch, "time_to_accuracy.py")
    summaries = {
        "slow": dict(train_s=110.0, mean_reached=(20, 40.0), per_seed={0: (20, 40.0)}, stuck=0),
        "fast": dict(train_s=20.0, mean_reached=(9, 9.5), per_seed={0: (9, 9.5)}, stuck=0),
    }
    args = tta["parse_args"](["--data", "d", "--recipe", "x=y", "--goal-s", "9", "--goal-cut", "11"])
    tta["print_goals"](summaries, args)
    lines = capsys.readouterr().out.split("\n")
    assert "within 9 s of training per fold, no fold stuck: NOT MET" in lines[1]  # 9.5 s > 9 s
    assert "within slow's whole training / 11 = 10.0 s of training per fold, no fold stuck: MET" in lines[3]
    assert "each seed" not in "".join(lines)  # one seed: the headline is that seed's
    summaries["fast"]["per_seed"] = {0: (8, 8.0), 1: (11, 10.5), 2: None}  # pooled, the mean still at 9.5 s
    tta["print_goals"](summaries, args)
    out = capsys.readouterr().out
    assert "no fold stuck: MET\n  and on each seed's folds alone: NOT MET (seeds [1, 2])" in out  # the 10 s bar
    summaries["fast"]["stuck"] = 1
    tta["print_goals"](summaries, args)
    assert capsys.readouterr().out.count("no fold stuck: NOT MET") == 2


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--recipe", "fast"], "--recipe 'fast' is not NAME="),
        (["--recipe", "a=x", "--baseline", "b"], "--baseline 'b' is not a --recipe name (a)"),
        (["--recipe", "a=x", "--goal-recipe", "c"], "--goal-recipe 'c' is not a --recipe name (a)"),
        (["--recipe", "a=x", "--goal-cut", "0"], "--goal-cut must be > 0, got 0"),
        (["--recipe", "a=experiment=best seed=2"], "--recipe a sets seed=; give the seeds with --seeds"),
    ],
)
def test_time_to_accuracy_refuses_bad_goals_before_training(extra, message, monkeypatch):
    tta = load(monkeypatch, "time_to_accuracy.py")
    with pytest.raises(SystemExit, match=re.escape(message)):
        tta["main"](["--data", "d", *extra])


def test_time_to_accuracy_reports_every_seed_and_fold_and_counts_stuck_ones(monkeypatch, capsys):
    tta = load(monkeypatch, "time_to_accuracy.py")
    runs = {(0, 0): [0.5, 0.99], (0, 1): [0.6, 1.0], (1, 0): [0.0, 0.0], (1, 1): [0.7, 0.995]}
    results = {}
    for key, accs in runs.items():
        r = fold(accs)
        reached = next(((e, r["elapsed"][e]) for e in r["acc"] if r["acc"][e] >= 0.99), None)
        results[key] = {
            **r,
            "seq": accs[-1],
            "char": accs[-1],
            "train_s": 2.0,
            "wall_s": 3.0,
            "epochs": 2,
            "reached": reached,
        }
    summary = tta["report"]("r", results, 0.99)
    out = capsys.readouterr().out
    assert "| 1 | 0 | 2 | 2.0 | 3.0 | never | never | 0.0000 | 0.0000 |" in out  # seed 1, fold 0
    assert summary["stuck"] == 1 and "stuck (best val seq_acc <= 0.01): 1 of 4" in out
    assert summary["mean_reached"] is None  # the stuck fold holds the mean at 0.746
    assert "per seed, its folds' mean: seed 0: epoch 2, 2.0 s; seed 1: never" in out


def test_time_to_accuracy_recipes_take_turns_fold_by_fold(monkeypatch, capsys, tmp_path):
    tta = load(monkeypatch, "time_to_accuracy.py")
    trained = []

    def train_fold(name, overrides, args, seed, fold):
        trained.append((name, seed, fold))
        return f"{name}/{seed}/{fold}"

    def fold_result(run, target):
        r = fold([0.5, 1.0])
        return {**r, "seq": 1.0, "char": 1.0, "train_s": 2.0, "wall_s": 3.0, "epochs": 2, "reached": (2, 2.0)}

    names = tta["main"].__globals__  # the functions main() looks up, not run_path's copy of them
    monkeypatch.setitem(names, "train_fold", train_fold)
    monkeypatch.setitem(names, "fold_result", fold_result)
    argv = ["--data", "d", "--recipe", "a=x=1", "--recipe", "b=x=2", "--seeds", "0", "1", "--only-folds", "0", "1"]
    tta["main"]([*argv, "--out", str(tmp_path)])
    # Each recipe trains each fold just after the other: the machine's drift falls on both alike.
    assert trained == [(r, s, f) for s in (0, 1) for f in (0, 1) for r in "ab"]
    out = capsys.readouterr().out
    assert out.index("## a: x=1") < out.index("## b: x=2")  # and each recipe's report still in one piece


def test_time_to_accuracy_reads_the_goal_recipes_first_export_for_goal_3(monkeypatch, capsys, tmp_path):
    tta = load(monkeypatch, "time_to_accuracy.py")
    names = tta["main"].__globals__
    monkeypatch.setitem(names, "train_fold", lambda name, overrides, args, seed, fold: tmp_path / f"{name}{seed}{fold}")
    result = {**fold([1.0]), "seq": 1.0, "char": 1.0, "train_s": 1.0, "wall_s": 1.0, "epochs": 1, "reached": (1, 1.0)}
    monkeypatch.setitem(names, "fold_result", lambda run, target: result)
    calls = []

    def run(cmd, **kwargs):
        calls.append(cmd)
        line = '{"img_per_s": 2500}\nGOAL: >= 2000 images/s batched (batch 256) on ONNX Runtime: 2500, MET'
        return subprocess.CompletedProcess(cmd, 0, stdout=line, stderr="")

    monkeypatch.setattr(names["subprocess"], "run", run)
    argv = ["--data", "d", "--recipe", "a=x=1", "--recipe", "b=x=2", "--seeds", "3", "4", "--only-folds", "2", "1"]
    tta["main"]([*argv, "--goal-img-s", "2000", "--out", str(tmp_path)])
    # The goal recipe (the last) at its first seed and fold, read with the goal given.
    assert calls == [[sys.executable, "bench/onnx_inference.py", str(tmp_path / "b32/checkpoints/best.onnx"), "d",
                      "--goal", "2000"]]  # fmt: skip
    assert capsys.readouterr().out.endswith("on ONNX Runtime: 2500, MET\n")


def test_label_audit_lists_only_images_every_run_misreads(monkeypatch):
    audit = load(monkeypatch, "label_audit.py")
    labels = {"a.png": "cdcb3", "b.png": "mxnw4", "c.png": "22222"}
    reads = {"a.png": ["edcb3", "edcb3"], "b.png": ["mxmw4", "mxnw4"], "c.png": ["22222"]}
    assert audit["always_misread"](reads, labels) == {"a.png": ["edcb3", "edcb3"]}  # b: one run read it right


def test_onnx_inference_goal_line_is_met_only_at_or_above_the_goal(monkeypatch):
    bench = load(monkeypatch, "onnx_inference.py")
    line = bench["goal_line"](2000.0, 2000, 256)
    assert line == "GOAL: >= 2000 images/s batched (batch 256) on ONNX Runtime: 2000, MET"
    assert bench["goal_line"](1999.6, 2000, 256).endswith(": 1999, NOT MET")


def test_bench_says_what_share_of_the_peak_half_of_keras_needs(monkeypatch):
    bench = load(monkeypatch, "bench.py")
    ours = {"wall_s": 20.0, "epoch_s": 1.0}  # 10 epochs of 1.0 s and 10 s outside them
    # Half of 90 s is 45 s: 35 s for 10 epochs, 3.5 s each, where the peak would take 2.8 s.
    line = bench["half_run_needs"](ours, "Keras", 90.0, 10, 2.8)
    assert "leaves 3.500 s an epoch beside our 10.0 s outside the epochs: 80% of the fp32 matmul peak" in line
    assert "is less than our 10.0 s outside the epochs" in bench["half_run_needs"](ours, "Keras", 18.0, 10, 2.8)


@pytest.mark.parametrize(
    ("script", "args", "error"),
    [
        ("onnx_inference.py", ["none.onnx", "."], "none.onnx: not a readable ONNX model"),
        ("onnx_agreement.py", ["none.ckpt"], "no checkpoint file at none.ckpt"),
        ("label_audit.py", ["run"], "no checkpoint file at run/checkpoints/last.ckpt"),
        ("ctc_probe.py", ["--data", "none"], "data folder not found: none"),
    ],
)
def test_bench_script_names_a_missing_input_in_one_line(script, args, error, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert run_as_main(monkeypatch, script, *args).code == 2
    assert capsys.readouterr().err.startswith(f"error: {error}")


@pytest.mark.parametrize(
    ("script", "args"),
    [
        ("bench.py", ["--tf-python"]),
        ("ddddocr_zero_shot.py", ["--data", ".", "--ddddocr-python"]),
        ("serve_load.py", ["x.ckpt", "--ddddocr-python"]),
    ],
)
def test_bench_script_refuses_a_peer_python_that_is_not_there(script, args, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.ckpt").write_bytes(b"")  # there: the peer's Python is what is missing
    assert run_as_main(monkeypatch, script, *args, str(tmp_path / "python")).code == 2
    assert capsys.readouterr().err.rstrip().endswith(f"python: not an executable: {tmp_path / 'python'}")


def test_peer_benches_refuse_a_missing_checkpoint_or_a_peer_without_ddddocr(monkeypatch, capsys, tmp_path):
    # Before the minutes of measuring: not a traceback when the peer's turn comes.
    assert run_as_main(monkeypatch, "serve_load.py", str(tmp_path / "none.ckpt")).code == 2
    assert capsys.readouterr().err.rstrip().endswith(f"argument ckpt: no such file: {tmp_path / 'none.ckpt'}")
    (tmp_path / "best.ckpt").write_bytes(b"")
    no_ddddocr = f"error: ddddocr is not installed for {sys.executable}"  # the project's venv: never a dependency
    peer = ["--ddddocr-python", sys.executable]
    assert run_as_main(monkeypatch, "serve_load.py", str(tmp_path / "best.ckpt"), *peer).code == no_ddddocr
    assert run_as_main(monkeypatch, "ddddocr_zero_shot.py", "--data", str(tmp_path), *peer).code == no_ddddocr


def test_serve_load_percentiles_are_nearest_rank(monkeypatch):
    nearest_rank = load(monkeypatch, "serve_load.py")["nearest_rank"]
    thousand = [float(i) for i in range(1, 1001)]
    assert nearest_rank(thousand, 99) == 990.0  # 99% of the values at or below it, and no fewer
    assert nearest_rank(thousand, 50) == 500.0
    assert nearest_rank([1.0, 2.0, 3.0], 50) == 2.0
    assert nearest_rank([7.0], 99) == 7.0
