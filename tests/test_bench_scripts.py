"""The bench scripts are not run by the tests (they take minutes), but they must at least start: a name moved in
the package would otherwise break them unnoticed. Each runs as its own __main__ in this process (torch is loaded
already), as `python bench/X.py --help` would."""

import runpy
import sys

import pytest

from .conftest import ROOT

SCRIPTS = sorted(p.name for p in (ROOT / "bench").glob("*.py"))


def test_the_scripts_are_found():  # else the test below would pass on none
    assert {"bench.py", "onnx_inference.py", "onnx_agreement.py"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_bench_script_starts(script, monkeypatch, capsys):
    path = str(ROOT / "bench" / script)
    monkeypatch.setattr(sys, "argv", [path, "--help"])
    monkeypatch.setattr(sys, "path", [str(ROOT / "bench"), *sys.path])  # a script's own folder comes first
    with pytest.raises(SystemExit) as stopped:
        runpy.run_path(path, run_name="__main__")
    assert stopped.value.code == 0
    assert capsys.readouterr().out.startswith("usage: ")
