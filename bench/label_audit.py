"""How much of a set's measured error is its labels' own: each k-fold run's last checkpoint
reads its fold's validation images, scored against the labels as shipped and against a list of
corrections (images whose label was checked by eye and found wrong).

    .venv/bin/python bench/label_audit.py --corrections docs/henan_label_errors.tsv \\
        outputs/bench/time_to_accuracy/<time>/henan-fast/fold*

The corrections file holds `file<TAB>label as shipped<TAB>what the image shows` lines."""

import argparse
from pathlib import Path


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corrections", required=True, help="file<TAB>given<TAB>shown lines")
    p.add_argument("runs", nargs="+", help="run dirs (each with .hydra/config.yaml and checkpoints/last.ckpt)")
    return p.parse_args(argv)


def main(argv=None) -> None:
    from captcha_lab.cli.evaluate import run_datamodule
    from captcha_lab.inference.torch_backend import Predictor

    args = parse_args(argv)
    shown = {}
    for line in Path(args.corrections).read_text().splitlines():
        name, _, truth = line.split("\t")[:3]  # a header line names no image: harmless
        shown[name] = truth
    print("| run | val images | corrected labels among them | seq_acc vs labels | seq_acc vs corrected |")
    print("|---|---|---|---|---|")
    for run in map(Path, args.runs):
        reader = Predictor.from_checkpoint(run / "checkpoints" / "last.ckpt", kernel=False)
        val = run_datamodule(run, symbols=reader.charset.symbols).splits["val"]  # as the run drew it
        given = reader.charset.texts(val.targets)
        fixed = [shown.get(name, label) for name, label in zip(val.names, given, strict=True)]
        reads = [p.text for p in reader.read_all(val.images)]
        n = len(reads)
        right = sum(r == t for r, t in zip(reads, given, strict=True)) / n
        right_fixed = sum(r == t for r, t in zip(reads, fixed, strict=True)) / n
        print(f"| {run} | {n} | {sum(name in shown for name in val.names)} | {right:.4f} | {right_fixed:.4f} |")


if __name__ == "__main__":
    main()
