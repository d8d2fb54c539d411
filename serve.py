"""Serve a run over HTTP: `python serve.py ckpt_path=PATH [port=8000]` (see conf/serve.yaml, docs/serving.md)."""

import hydra

from captcha_lab.cli.serve import run


@hydra.main(version_base="1.3", config_path="conf", config_name="serve")
def main(cfg) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
