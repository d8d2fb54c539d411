"""Train a captcha recognizer: `python train.py optimizer=adam lr=1e-3` (see conf/train.yaml)."""

import hydra

from captcha_lab.cli.train import train


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg) -> float:
    return train(cfg)


if __name__ == "__main__":
    main()
