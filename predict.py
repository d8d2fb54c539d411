"""Read captchas: `python predict.py ckpt_path=PATH input=FILE|DIR|GLOB [output=FILE.csv]` (see conf/predict.yaml)."""

import sys

import hydra

from captcha_lab.cli.predict import run


@hydra.main(version_base="1.3", config_path="conf", config_name="predict")
def main(cfg) -> None:
    if run(cfg):
        sys.exit(1)  # some inputs could not be read (each named on stderr)


if __name__ == "__main__":
    main()
