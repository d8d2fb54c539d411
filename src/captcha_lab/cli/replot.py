"""`python -m captcha_lab.cli.replot DIR...`: a finished run's figures, or a sweep's tables and
overlays, drawn again from what the runs logged."""

import sys

from captcha_lab.analysis.sweep import replot
from captcha_lab.cli.exits import user_errors
from captcha_lab.errors import DataError


def main(argv: list[str]) -> None:
    with user_errors():
        if not argv:
            raise DataError("usage: python -m captcha_lab.cli.replot RUN_OR_SWEEP_DIR...")
        for arg in argv:
            print(arg, "->", ", ".join(p.name for p in replot(arg)))


if __name__ == "__main__":
    main(sys.argv[1:])
