"""ddddocr's zero-shot accuracy on the validation images of our k-fold splits, for
docs/datasets.md: the same images train.py validates on in each fold (same folder, labels,
charset, lengths and seed), read by ddddocr in its own virtual environment (never a project
dependency).

    python3 -m venv /tmp/dddd && /tmp/dddd/bin/pip install ddddocr==1.6.1
    .venv/bin/python bench/ddddocr_zero_shot.py --ddddocr-python /tmp/dddd/bin/python \\
        --data ../shared/data/seu_auth

Each ddddocr setting (its default and beta models, each with and without its character range
limited to the set's symbols) is scored case-insensitively, as ddddocr is used; the best
setting is its figure."""

import argparse
import statistics
import subprocess

from _args import executable, package_version

from captcha_lab.data.datamodule import CaptchaDataModule

# Runs in ddddocr's venv: paths on stdin, `text` lines out, one per path, in order.
WORKER = """
import sys
import ddddocr
ocr = ddddocr.DdddOcr(show_ad=False, beta=sys.argv[1] == "beta")
if sys.argv[2]:
    ocr.set_ranges(sys.argv[2])
for line in sys.stdin:
    with open(line.rstrip("\\n"), "rb") as f:
        print(ocr.classification(f.read()).replace("\\n", " "), flush=True)
"""


def validation_images(args, fold: int) -> tuple[list[str], list[str]]:
    """Paths and labels of one fold's validation images, as train.py draws them."""
    data = CaptchaDataModule(
        dir=args.data, symbols=args.symbols, labels=args.labels, length=args.length,
        max_length=args.max_length, test_fraction=0.0, folds=args.folds, fold=fold, seed=args.seed,
        width=200,  # images are not read for their pixels here: any width saves the aspect scan
    )  # fmt: skip
    data.setup()
    val = data.splits["val"]
    return [f"{args.data}/{name}" for name in val.names], data.charset.texts(val.targets)


def read(python: str, setting: str, allowed: str, paths: list[str]) -> list[str]:
    done = subprocess.run(
        [python, "-c", WORKER, setting, allowed], input="\n".join(paths) + "\n", capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(f"error: ddddocr ({python}) failed: {done.stderr.strip().splitlines()[-1:]}")
    return done.stdout.splitlines()


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="ddddocr's zero-shot accuracy on our folds' validation images.")
    parser.add_argument(
        "--ddddocr-python", required=True, type=executable, help="python of a venv with ddddocr installed"
    )
    parser.add_argument("--data", required=True, help="the folder train.py reads (data.dir)")
    parser.add_argument("--symbols", default="auto", help="charset.symbols of the runs (auto: from the labels)")
    parser.add_argument("--length", type=int, default=None, help="data.length of the runs (default: from the labels)")
    parser.add_argument("--max-length", type=int, default=None)
    parser.add_argument("--labels", default="auto", help="data.labels of the runs")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--only-folds", type=int, nargs="*", help="score only these folds (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    package_version(args.ddddocr_python, "ddddocr")  # installed there: else one line now, not mid-run
    folds = args.only_folds if args.only_folds else list(range(args.folds))
    splits = {fold: validation_images(args, fold) for fold in folds}
    symbols = "".join(sorted(set("".join(t for _, truths in splits.values() for t in truths))))
    allowed = "".join(sorted(set(symbols.lower() + symbols.upper())))
    print(f"{args.data}: folds {folds} of {args.folds}, {sum(len(p) for p, _ in splits.values())} validation images")
    scores = {}
    for setting in ("default", "beta"):
        for limit in ("", allowed):
            per_fold = []
            for paths, truths in splits.values():
                reads = read(args.ddddocr_python, setting, limit, paths)
                per_fold.append(
                    sum(r.strip().lower() == t.lower() for r, t in zip(reads, truths, strict=True)) / len(truths)
                )
            scores[(setting, bool(limit))] = statistics.mean(per_fold)
            spread = statistics.stdev(per_fold) if len(per_fold) > 1 else 0.0
            cells = " ".join(f"{a:.4f}" for a in per_fold)
            name = f"{setting:7s} range {'limited' if limit else 'all    '}"
            print(f"  ddddocr {name}: seq_acc {statistics.mean(per_fold):.4f} ± {spread:.4f} (folds: {cells})")
    (setting, limited), best = max(scores.items(), key=lambda item: item[1])
    print(f"best: {setting}, range {'limited' if limited else 'all'}: {best:.4f}")


if __name__ == "__main__":
    from captcha_lab.cli.exits import user_errors

    with user_errors():  # a missing data folder: one line, exit 2
        main()
