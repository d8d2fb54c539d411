"""Evaluate a checkpoint: `python eval.py ckpt_path=outputs/runs/<run>/checkpoints/best.ckpt` (see conf/eval.yaml)."""

import hydra

from captcha_lab.cli.evaluate import evaluate


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def main(cfg) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
