"""ddddocr's zero-shot accuracy on the validation images of one of our splits, for
docs/datasets.md: the same images train.py validates on (same folder, labels, charset, length,
seed and fold), read by ddddocr in its own virtual environment (never a project dependency).

    python3 -m venv /tmp/dddd && /tmp/dddd/bin/pip install ddddocr==1.6.1
    .venv/bin/python bench/ddddocr_zero_shot.py --ddddocr-python /tmp/dddd/bin/python \\
        --data ../shared/data/seu_auth --symbols abcdefghijklmnopqrstuvwxyz0123456789 --length 4

Each ddddocr setting (its default and beta models, each with and without its character range
limited to the set's symbols) is scored case-insensitively, as ddddocr is used; the best
setting is its figure."""

import argparse
import subprocess

from captcha_lab.data.charset import Charset
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


def validation_images(args) -> tuple[list[str], list[str]]:
    """Paths and labels of the split's validation images, as train.py draws them."""
    data = CaptchaDataModule(
        dir=args.data, symbols=args.symbols, labels=args.labels, length=args.length,
        max_length=args.max_length, test_fraction=0.0, folds=args.folds, fold=args.fold, seed=args.seed,
    )  # fmt: skip
    data.setup()
    val = data.splits["val"]
    return [f"{args.data}/{name}" for name in val.names], Charset(args.symbols).texts(val.targets)


def read(python: str, setting: str, allowed: str, paths: list[str]) -> list[str]:
    done = subprocess.run(
        [python, "-c", WORKER, setting, allowed], input="\n".join(paths) + "\n", capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(f"error: ddddocr ({python}) failed: {done.stderr.strip().splitlines()[-1:]}")
    return done.stdout.splitlines()


def main() -> None:
    parser = argparse.ArgumentParser(description="ddddocr's zero-shot accuracy on one split's validation images.")
    parser.add_argument("--ddddocr-python", required=True, help="python of a venv with ddddocr installed")
    parser.add_argument("--data", required=True, help="the folder train.py reads (data.dir)")
    parser.add_argument("--symbols", required=True, help="charset.symbols of the run")
    parser.add_argument("--length", type=int, required=True, help="data.length of the run")
    parser.add_argument("--max-length", type=int, default=None)
    parser.add_argument("--labels", default="auto", help="data.labels of the run")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    paths, truths = validation_images(args)
    allowed = "".join(sorted(set(args.symbols.lower() + args.symbols.upper())))
    print(f"{args.data}: fold {args.fold} of {args.folds}, {len(paths)} validation images")
    scores = {}
    for setting in ("default", "beta"):
        for limit in ("", allowed):
            reads = read(args.ddddocr_python, setting, limit, paths)
            right = sum(r.strip().lower() == t.lower() for r, t in zip(reads, truths, strict=True))
            scores[(setting, bool(limit))] = right / len(truths)
            print(
                f"  ddddocr {setting:7s} range {'limited' if limit else 'all    '}: seq_acc {right / len(truths):.4f}"
            )
    (setting, limited), best = max(scores.items(), key=lambda item: item[1])
    print(f"best: {setting}, range {'limited' if limited else 'all'}: {best:.4f}")


if __name__ == "__main__":
    main()
