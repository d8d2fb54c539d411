"""The package's layer rules (import-linter contracts in pyproject.toml): cli > analysis >
training | inference > models > data > errors | atomic, Hydra only in cli, no import cycles."""

import subprocess
import sys
import textwrap

from tests.conftest import ROOT


def lint() -> subprocess.CompletedProcess:
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True, no_logo=True))"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_every_layer_contract_is_kept():
    done = lint()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 kept, 0 broken" in done.stdout


def test_a_model_importing_the_command_line_breaks_the_contracts(tmp_path):
    """The contracts can fail: a copy of the package where a net imports cli is refused."""
    package = tmp_path / "src"
    subprocess.run(["cp", "-r", str(ROOT / "src"), str(package)], check=True)
    (package / "captcha_lab" / "models" / "crnn.py").open("a").write(
        textwrap.dedent("""
        import captcha_lab.cli.train  # noqa
    """)
    )
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True, no_logo=True))"
    env_path = f"{package}"
    done = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {env_path!r}); {code}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "captcha_lab.models.crnn -> captcha_lab.cli.train" in done.stdout
