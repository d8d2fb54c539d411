"""How much of a set's measured error is its labels' own: each k-fold run's last checkpoint reads
its fold's validation images; the images that every run which validated them misreads are listed
(a wrong label, or a drawing no reader tells apart: check them by eye), and with a list of
corrections (images whose label was checked by eye and found wrong) each run is also scored
against the corrected labels.

    .venv/bin/python bench/label_audit.py outputs/bench/time_to_accuracy/<time>/captcha_v2-best/seed*/fold*
    .venv/bin/python bench/label_audit.py --corrections docs/henan_label_errors.tsv \\
        outputs/bench/time_to_accuracy/<time>/henan-best/seed0/fold*

The corrections file holds `file<TAB>label as shipped<TAB>what the image shows` lines."""

import argparse
from collections import defaultdict
from pathlib import Path


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corrections", help="file<TAB>given<TAB>shown lines")
    p.add_argument("runs", nargs="+", help="run dirs (each with .hydra/config.yaml and checkpoints/last.ckpt)")
    return p.parse_args(argv)


def always_misread(reads: dict[str, list[str]], labels: dict[str, str]) -> dict[str, list[str]]:
    """The images that every run which validated them read otherwise than their label, with those
    reads: `reads` holds each image's reads, one per run that validated it."""
    return {name: r for name, r in sorted(reads.items()) if all(text != labels[name] for text in r)}


def main(argv=None) -> None:
    from captcha_lab.cli.evaluate import run_datamodule
    from captcha_lab.inference.torch_backend import Predictor

    args = parse_args(argv)
    shown = {}
    for line in Path(args.corrections).read_text().splitlines() if args.corrections else []:
        name, _, truth = line.split("\t")[:3]  # a header line names no image: harmless
        shown[name] = truth
    reads_of, labels = defaultdict(list), {}
    columns = ["run", "val images", "corrected labels among them", "seq_acc vs labels", "seq_acc vs corrected"]
    keep = range(len(columns)) if shown else (0, 1, 3)  # without corrections, the columns about them go
    print(f"| {' | '.join(columns[i] for i in keep)} |\n|{'---|' * len(keep)}")
    for run in map(Path, args.runs):
        reader = Predictor.from_checkpoint(run / "checkpoints" / "last.ckpt", kernel=False)
        val = run_datamodule(run, symbols=reader.charset.symbols).splits["val"]  # as the run drew it
        given = reader.charset.texts(val.targets)
        fixed = [shown.get(name, label) for name, label in zip(val.names, given, strict=True)]
        reads = [p.text for p in reader.read_all(val.images)]
        for name, label, text in zip(val.names, given, reads, strict=True):
            reads_of[name].append(text)
            labels[name] = label
        n = len(reads)
        right = sum(r == t for r, t in zip(reads, given, strict=True)) / n
        right_fixed = sum(r == t for r, t in zip(reads, fixed, strict=True)) / n
        cells = [run, n, sum(name in shown for name in val.names), f"{right:.4f}", f"{right_fixed:.4f}"]
        print(f"| {' | '.join(str(cells[i]) for i in keep)} |")
    misread = always_misread(reads_of, labels)
    print(f"\nmisread by every run that validated them: {len(misread)} of {len(labels)} images")
    for name, texts in misread.items():
        print(f"  {name}: label {labels[name]!r}, read {', '.join(map(repr, texts))}")


if __name__ == "__main__":
    from captcha_lab.cli.exits import user_errors

    with user_errors():  # a run without a checkpoint, a moved data folder: one line, exit 2
        main()
