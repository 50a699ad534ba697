"""README.md and the documentation: their examples run, their promises hold."""

from __future__ import annotations

import importlib.util
import pathlib
import re

import pytest

pytestmark = pytest.mark.backend_independent

ROOT = pathlib.Path(__file__).resolve().parents[1]

# The files whose ```python blocks a user copies first.
EXAMPLE_FILES = ("README.md", "docs/getting-started.md", "docs/penalties.md")
# CI runs these two lines of README.md verbatim.
COMMANDS = (
    'python3 -m venv .venv && . .venv/bin/activate && pip install ".[all]" '
    "&& keras-disentangle forced-to-learn",
    'python3 -m venv .venv && . .venv/bin/activate && pip install ".[test]" && pytest',
)


def _python_blocks(path):
    text = (ROOT / path).read_text(encoding="utf-8")
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.M | re.S)


@pytest.mark.parametrize("path", EXAMPLE_FILES)
def test_examples_run(path, tmp_path, monkeypatch):
    # In order, in one folder (a block may load what an earlier one saved),
    # each in a fresh namespace, as separate programs would.
    blocks = _python_blocks(path)
    assert blocks
    monkeypatch.chdir(tmp_path)
    for i, code in enumerate(blocks):
        exec(compile(code, f"{path}[{i}]", "exec"), {"__name__": "__example__"})


def test_readme_gives_the_two_commands_verbatim():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    for command in COMMANDS:
        assert command in lines


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 220, "README.md: move details to docs/"


def test_readme_links_resolve():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#]+?)(?:#[^)]*)?\)", text)
    assert targets
    missing = [t for t in targets if "://" not in t and not (ROOT / t).exists()]
    assert not missing


def test_docstring_examples_are_indented():
    # Unindented under "Example:", the >>> lines render as Markdown quotes.
    spec = importlib.util.spec_from_file_location(
        "indent_examples", ROOT / "docs/_tools/indent_examples.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    unindented = {
        str(path.relative_to(ROOT)): n
        for path in sorted((ROOT / "keras_disentangle").rglob("*.py"))
        for n in [module.indent_examples(path.read_text(encoding="utf-8"))[1]]
        if n
    }
    assert not unindented
    # and the check finds what it must
    text = 'def f():\n    """F.\n\n    Example:\n\n    >>> 1\n    1\n    """\n'
    fixed, n = module.indent_examples(text)
    assert n == 1 and "        >>> 1\n        1\n" in fixed
    assert module.indent_examples(fixed) == (fixed, 0)
