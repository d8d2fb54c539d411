"""Time to accuracy (DAWNBench-style) of training recipes, k-fold cross-validated, side by side in
one run: each recipe trains every fold with train.py (one process after another, nothing else
timed meanwhile; the recipes take turns, fold by fold, so a drift in the machine's speed over the
hour falls on each of them alike), then reads each epoch's val/seq_acc and training time
(perf/epoch_s) back from the runs' TensorBoard events.

    .venv/bin/python bench/time_to_accuracy.py --data ../shared/data/captcha_v2 \\
        --recipe crnn60="experiment=crnn60" --recipe best="experiment=best"

Per recipe it prints each fold's first epoch at or above --target and the training time to it,
for each of --seeds (which also draw the folds), then over all of them: the final val seq_acc
and char_acc (mean ± std), the training time per fold, the folds stuck on CTC's all-blank
plateau, and the headline, the k-fold time to accuracy: the first epoch at which the folds' mean
val seq_acc is at or above --target, and the folds' mean training time to it (with several seeds,
pooled over them, and then each seed's own). --goal-s prints a goal line for it in seconds,
--goal-cut one as a cut from --baseline's whole training per fold (the same bar on any CPU), for
the recipe named by --goal-recipe (default: the last), and with several seeds whether each seed
alone meets it. --goal-img-s then reads the goal recipe's first run's best.onnx on ONNX Runtime
(bench/onnx_inference.py, in a process of its own) and prints whether its batched images/s meet
it: issue 24's goals 1 and 3 from one run."""

import argparse
import itertools
import json
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="a folder of labelled captchas (data.dir)")
    p.add_argument("--recipe", action="append", required=True, help='NAME="train.py overrides"; repeatable')
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--only-folds", type=int, nargs="*", help="train only these folds (default: all)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="train every fold with each seed (train.py seed=)")
    p.add_argument("--target", type=float, default=0.99, help="val seq_acc to reach")
    p.add_argument("--goal-s", type=float, help="goal: time to target per fold, in seconds")
    p.add_argument(
        "--goal-cut", type=float, help="goal: time to target per fold <= --baseline's whole training per fold / this"
    )
    p.add_argument("--baseline", help="the recipe --goal-cut divides (default: the first)")
    p.add_argument("--goal-recipe", help="the recipe the goals are for (default: the last)")
    p.add_argument("--goal-img-s", type=float, help="goal: the goal recipe's best.onnx, batched images/s")
    p.add_argument("--out", default="outputs/bench/time_to_accuracy", help="the runs go to a new folder in it")
    return p.parse_args(argv)


def train_fold(name: str, overrides: str, args, seed: int, fold: int) -> Path:
    run = Path(args.out) / f"{Path(args.data).name}-{name}" / f"seed{seed}" / f"fold{fold}"
    cmd = [sys.executable, "train.py", f"data.dir={args.data}", *shlex.split(overrides), f"seed={seed}"]
    cmd += [f"data.folds={args.folds}", f"data.fold={fold}", f"hydra.run.dir={run}", "~callbacks.progress_bar"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{name} seed {seed} fold {fold} failed: {done.stderr.strip().splitlines()[-1:]}")
    return run


def fold_result(run: Path, target: float) -> dict:
    """A fold's curve: per epoch its val seq_acc and training time so far; its final scores; the
    first epoch at or above `target` and the training time to it (None: never)."""
    from captcha_lab.analysis.runs import read_history

    h = read_history(ROOT / run)
    epochs = sorted(h["perf/epoch_s"])
    elapsed = dict(zip(epochs, itertools.accumulate(h["perf/epoch_s"][e] for e in epochs), strict=True))
    acc = h["val/seq_acc"]
    reached = next(((e, elapsed[e]) for e in epochs if acc.get(e, 0.0) >= target), None)
    last = max(acc)
    wall = json.loads((ROOT / run / "timing.json").read_text())["wall_s"]
    return dict(
        acc=acc, elapsed=elapsed, seq=acc[last], char=h["val/char_acc"][last], train_s=elapsed[epochs[-1]],
        wall_s=wall, epochs=last, reached=reached,
    )  # fmt: skip


def mean_curve(results: list[dict]) -> dict[int, float]:
    """The folds' (of every seed) mean val seq_acc at each epoch that every fold validated and timed."""
    common = set.intersection(*(set(r["acc"]) & set(r["elapsed"]) for r in results))
    return {epoch: statistics.mean(r["acc"][epoch] for r in results) for epoch in sorted(common)}


def mean_curve_reaches(results: list[dict], target: float) -> tuple[int, float] | None:
    """The first epoch at which the folds' mean val seq_acc is at or above `target`, and the
    folds' mean training time to it: the k-fold time to accuracy."""
    for epoch, acc in mean_curve(results).items():
        if acc >= target:
            return epoch, statistics.mean(r["elapsed"][epoch] for r in results)
    return None


def at_epoch(reached: tuple[int, float] | None) -> str:
    return f"epoch {reached[0]}, {reached[1]:.1f} s" if reached else "never"


def mean_std(values: list[float]) -> str:
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:.4f}"


def report(name: str, results: dict[tuple[int, int], dict], target: float) -> dict:
    """Prints a row per (seed, fold) and the summary over all of them; returns the summary."""
    from captcha_lab.analysis.sweep import STUCK_AT

    print(f"\n## {name}")
    header = f"| seed | fold | epochs | train s | wall s | epoch at {target} | time to {target} s | final val seq_acc |"
    print(header + " char_acc |\n" + "|---" * 9 + "|")
    for (seed, fold), r in results.items():
        epoch, at = r["reached"] or ("never", None)
        at_s = f"{at:.1f}" if at is not None else "never"
        row = [seed, fold, r["epochs"], f"{r['train_s']:.1f}", f"{r['wall_s']:.1f}", epoch, at_s, f"{r['seq']:.4f}"]
        print("| " + " | ".join(map(str, row)) + f" | {r['char']:.4f} |")
    seeds = sorted({seed for seed, _ in results})
    per_seed = {seed: mean_curve_reaches([r for (s, _), r in results.items() if s == seed], target) for seed in seeds}
    results = list(results.values())
    times = [r["reached"][1] for r in results if r["reached"]]
    mean_reached = mean_curve_reaches(results, target)
    stuck = sum(max(r["acc"].values()) <= STUCK_AT for r in results)  # never left the initial plateau
    summary = dict(
        seq=mean_std([r["seq"] for r in results]),
        char=mean_std([r["char"] for r in results]),
        train_s=statistics.mean(r["train_s"] for r in results),
        mean_reached=mean_reached,
        per_seed=per_seed,
        stuck=stuck,
    )
    print(f"final val seq_acc {summary['seq']}, char_acc {summary['char']}; training {summary['train_s']:.1f} s/fold")
    if mean_reached:
        epoch, at = mean_reached
        print(f"time to {target} (mean over folds at or above it): epoch {epoch}, {at:.1f} s of training per fold")
    else:
        print(f"time to {target} (mean over folds at or above it): never")
    if len(seeds) > 1:  # the headline pools every seed's folds; each seed's own folds may differ
        print("per seed, its folds' mean: " + "; ".join(f"seed {s}: {at_epoch(per_seed[s])}" for s in seeds))
    print(f"folds (of every seed) at or above {target} at some epoch: {len(times)} of {len(results)}")
    print(f"folds (of every seed) stuck (best val seq_acc <= {STUCK_AT}): {stuck} of {len(results)}")
    print("mean val seq_acc by epoch: " + ", ".join(f"{e}: {acc:.3f}" for e, acc in mean_curve(results).items()))
    return summary


def recipes_of(args) -> dict[str, str]:
    """NAME -> overrides; exits with one line, before any training, on a malformed --recipe, one
    that sets the seed (--seeds does), a goal that names no recipe, or a cut that is not positive."""
    for recipe in args.recipe:
        if "=" not in recipe:
            sys.exit(f'error: --recipe {recipe!r} is not NAME="train.py overrides"')
    recipes = dict(r.split("=", 1) for r in args.recipe)
    for name, overrides in recipes.items():
        if any(o.startswith("seed=") for o in shlex.split(overrides)):
            sys.exit(f"error: --recipe {name} sets seed=; give the seeds with --seeds")
    for flag, name in (("--baseline", args.baseline), ("--goal-recipe", args.goal_recipe)):
        if name is not None and name not in recipes:
            sys.exit(f"error: {flag} {name!r} is not a --recipe name ({', '.join(recipes)})")
    if args.goal_cut is not None and not args.goal_cut > 0:
        sys.exit(f"error: --goal-cut must be > 0, got {args.goal_cut:g}")
    return recipes


def main(argv=None) -> None:
    args = parse_args(argv)
    recipes = recipes_of(args)
    folds = args.only_folds if args.only_folds else list(range(args.folds))
    args.out = str(Path(args.out) / time.strftime("%Y-%m-%d_%H-%M-%S"))  # never onto an earlier bench's runs
    when = time.strftime("%Y-%m-%d %H:%M")
    print(f"# time to accuracy on {args.data}, seeds {args.seeds}, folds {folds}, {when}")
    runs = {name: {} for name in recipes}
    # Fold by fold, each recipe in turn: a cut measured against a baseline that trained in another
    # part of the hour would carry the VM's drift (a third within an hour, docs/benchmarks.md).
    for seed, fold, (name, overrides) in itertools.product(args.seeds, folds, recipes.items()):
        runs[name][seed, fold] = train_fold(name, overrides, args, seed, fold)
    summaries = {}
    for name, overrides in recipes.items():
        results = {key: fold_result(run, args.target) for key, run in runs[name].items()}
        summaries[name] = report(f"{name}: {overrides}", results, args.target)
    print_goals(summaries, args)
    if args.goal_img_s is not None:
        first = runs[args.goal_recipe or list(recipes)[-1]][args.seeds[0], folds[0]]
        print(inference_goal(first / "checkpoints" / "best.onnx", args))


def inference_goal(onnx: Path, args) -> str:
    """bench/onnx_inference.py's goal line for `onnx`, read in a process without PyTorch."""
    cmd = [sys.executable, "bench/onnx_inference.py", str(onnx), args.data, "--goal", f"{args.goal_img_s:g}"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        return f"GOAL: inference of {onnx} failed: {done.stderr.strip().splitlines()[-1:]}"
    return f"\nbatched inference of {onnx} (ONNX Runtime):\n{done.stdout.strip()}"


def print_goals(summaries: dict[str, dict], args) -> None:
    """The goal lines: time to target within --goal-s seconds, and within the baseline's whole
    training cut --goal-cut times (the same bar on a faster or slower CPU), no fold stuck."""
    name = args.goal_recipe or list(summaries)[-1]
    reached, stuck = summaries[name]["mean_reached"], summaries[name]["stuck"]
    bars = []
    if args.goal_s is not None:
        bars.append((args.goal_s, f"{args.goal_s:g} s"))
    if args.goal_cut is not None:
        baseline = args.baseline or list(summaries)[0]
        bar = summaries[baseline]["train_s"] / args.goal_cut
        bars.append((bar, f"{baseline}'s whole training / {args.goal_cut:g} = {bar:.1f} s"))
    per_seed = summaries[name]["per_seed"]
    for bar, words in bars:
        met = reached is not None and reached[1] <= bar and not stuck
        print(
            f"\nGOAL {name}: mean val seq_acc over folds >= {args.target} within {words} of training per fold,"
            f" no fold stuck: {'MET' if met else 'NOT MET'}"
        )
        if len(per_seed) > 1:
            late = [s for s, r in per_seed.items() if r is None or r[1] > bar]
            print(f"  and on each seed's folds alone: {'MET' if not late else f'NOT MET (seeds {late})'}")


if __name__ == "__main__":
    main()
