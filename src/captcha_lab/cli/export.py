"""`python -m captcha_lab.cli.export CKPT [OUT]`: a checkpoint's net as ONNX, beside it by default."""

import argparse

from captcha_lab.cli.exits import user_errors
from captcha_lab.inference.export import export


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Export a checkpoint's net to ONNX, beside it.")
    parser.add_argument("checkpoint")
    parser.add_argument("out", nargs="?", help="default: the checkpoint's path with .onnx")
    args = parser.parse_args(argv)
    with user_errors():
        print(export(args.checkpoint, args.out))


if __name__ == "__main__":
    main()
