"""How fast a CTC net leaves the all-blank plateau, and whether it then reads or memorises.

A plain training loop (no Lightning, no augmentation, constant Adam lr) over fold 0 of the real
captchas, printing train/val CTC loss and val seq_acc every `--every` steps, for CRNN variants:

    .venv/bin/python bench/ctc_probe.py --context 3 --rnn lstm   # experiment=crnn60's net
    .venv/bin/python bench/ctc_probe.py --context 3 --rnn none   # without its LSTM (experiment=best's, at full width)
    .venv/bin/python bench/ctc_probe.py --context 0 --rnn lstm   # without its frame convs
    # the first CRNN (no frame convs, narrower trunk, 2 BiLSTM layers)
    .venv/bin/python bench/ctc_probe.py --context 0 --rnn lstm --channels 24 48 64 --layers 2 --dropout 0.25
"""

import argparse
import time
from pathlib import Path

import torch

from captcha_lab.data.charset import Charset
from captcha_lab.data.datamodule import split_indices
from captcha_lab.data.labelled import load_folder
from captcha_lab.models.crnn import CRNN
from captcha_lab.models.decoding import ctc_loss

ROOT = Path(__file__).resolve().parents[1]


def val_scores(net: CRNN, images: torch.Tensor, targets: torch.Tensor) -> tuple[float, float]:
    net.eval()
    with torch.no_grad():
        logits = net(images)
        loss = ctc_loss(net.log_probs(logits), targets).item()
        read, _ = net.decode(logits, targets.shape[1] + 1)  # (B, L + 1): a too-long read stays wrong
    net.train()
    truth = torch.nn.functional.pad(targets, (0, 1), value=-1)
    return loss, (read == truth).all(1).float().mean().item()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "captcha_v2"))
    parser.add_argument("--context", type=int, default=3)
    parser.add_argument("--rnn", default="none")
    parser.add_argument("--channels", type=int, nargs="+", default=[32, 64, 96])
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=1, help="stacked BiRNN layers")
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def probe(net: CRNN, train, val, steps: int, every: int) -> None:
    """Adam 1e-3, batch 16; a table row every `every` steps."""
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    print("| step | s | train CTC loss (mean of last steps) | val CTC loss | val seq_acc |\n|---|---|---|---|---|")
    start, losses, step = time.perf_counter(), [], 0
    while step < steps:
        for batch in torch.randperm(len(train)).split(16):
            loss = ctc_loss(net.log_probs(net(train.images[batch])), train.targets[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            step += 1
            if step % every == 0:
                val_loss, seq_acc = val_scores(net, val.images, val.targets)
                elapsed, train_loss = time.perf_counter() - start, sum(losses) / len(losses)
                print(f"| {step} | {elapsed:.0f} | {train_loss:.3f} | {val_loss:.3f} | {seq_acc:.3f} |", flush=True)
                losses = []
            if step == steps:
                break


def main() -> None:
    args = parse_args()
    torch.manual_seed(args.seed)
    charset = Charset()
    data = load_folder(args.data, charset, 5)
    split = split_indices(len(data), 0, 0.2, 0.0, folds=5, fold=0)
    net = CRNN(
        len(charset),
        channels=tuple(args.channels),
        hidden=args.hidden,
        context=args.context,
        rnn=args.rnn,
        rnn_layers=args.layers,
        dropout=args.dropout,
    )
    print(f"{vars(args)}: {sum(p.numel() for p in net.parameters())} parameters")
    probe(net, data.subset(split["train"]), data.subset(split["val"]), args.steps, args.every)


if __name__ == "__main__":
    from captcha_lab.cli.exits import user_errors

    with user_errors():  # a missing or unreadable data folder: one line, exit 2
        main()
