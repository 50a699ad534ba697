"""Indent the ``Example:`` sections of docstrings so that they render.

Keras writes a docstring example unindented under its header::

    Example:

    >>> x = ...

Google style, which mkdocstrings (griffe) parses, wants a section's body
indented under its header; unindented, the ``>>>`` lines are Markdown block
quotes and ``[...]`` outputs become broken cross-references. This script
indents each such body by four spaces (doctest does not mind) and leaves
already indented sections alone, so it can run any number of times.

    python docs/_tools/indent_examples.py keras_disentangle          # rewrite
    python docs/_tools/indent_examples.py --check keras_disentangle  # CI check
"""

from __future__ import annotations

import argparse
import pathlib
import re
import sys

HEADER = re.compile(r"^(?P<indent>[ ]*)Examples?:\s*$")
SECTIONS = (
    "Args|Arguments|Attributes|Call arguments|Example|Examples|Input shape|"
    "Methods|Note|Notes|Output shape|Raises|References|Returns|See Also|"
    "Warning|Warnings|Yields"
)


def indent_examples(text: str) -> tuple[str, int]:
    """Returns the text with every unindented example body indented."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    changed = 0
    i = 0
    while i < len(lines):
        line = lines[i]
        out.append(line)
        i += 1
        match = HEADER.match(line)
        if not match:
            continue
        indent = match["indent"]
        end = re.compile(rf"^{indent}(({SECTIONS}):\s*$|\"\"\"|''')|^(?!{indent})\S")
        body_start = i
        while i < len(lines) and not end.match(lines[i]):
            i += 1
        body = lines[body_start:i]
        first = next((b for b in body if b.strip()), None)
        if first is None or first.startswith(indent + " "):
            out.extend(body)  # empty or already indented
            continue
        changed += 1
        out.extend("    " + b if b.strip() else b for b in body)
    return "".join(out), changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=pathlib.Path)
    parser.add_argument(
        "--check", action="store_true", help="only report; exit 1 if any"
    )
    args = parser.parse_args(argv)
    files = [
        f for p in args.paths for f in (sorted(p.rglob("*.py")) if p.is_dir() else [p])
    ]
    total = 0
    for f in files:
        text = f.read_text(encoding="utf-8")
        new, changed = indent_examples(text)
        if changed:
            total += changed
            print(f"{f}: {changed} example section(s) unindented")
            if not args.check:
                f.write_text(new, encoding="utf-8")
    return 1 if args.check and total else 0


if __name__ == "__main__":
    sys.exit(main())
