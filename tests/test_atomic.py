"""Outputs are replaced whole or not at all."""

import pytest

from captcha_lab import atomic


def test_an_output_is_replaced_whole_or_not_at_all(tmp_path):
    # summary.csv, metrics.json, predict.py's CSV, a resumed best.ckpt: all go through atomic.
    path = tmp_path / "summary.csv"
    path.write_text("earlier\n")
    with pytest.raises(RuntimeError), atomic.writing(path) as f:
        f.write("half a tab")
        raise RuntimeError("killed mid-write")
    assert path.read_text() == "earlier\n" and [p.name for p in tmp_path.iterdir()] == ["summary.csv"]
    atomic.write_json(path, {"b": 1, "a": 2})
    assert path.read_text() == '{\n  "a": 2,\n  "b": 1\n}\n' and [p.name for p in tmp_path.iterdir()] == ["summary.csv"]
