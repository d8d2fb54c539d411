"""`python -m captcha_lab.cli.replot DIR...`: each folder's redrawn figures, or one line of error."""

import pytest

from captcha_lab.cli.replot import main


def test_replot_names_each_folders_figures(tiny_run, capsys):
    main([str(tiny_run)])
    assert capsys.readouterr().out == f"{tiny_run} -> loss.png, accuracy.png\n"


@pytest.mark.parametrize("argv", [[], ["no/such/dir"]])
def test_replot_without_a_run_or_sweep_is_one_line(argv, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and err.startswith("error: ") and len(err.splitlines()) == 1
