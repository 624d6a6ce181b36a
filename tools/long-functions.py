#!/usr/bin/env python3
"""Lists the functions in crates/*/src (the test kit left out) longer than a
limit (80 lines by default), longest first: issue 24's measure of a module
layer that grew an orchestrator.

    python3 tools/long-functions.py [LIMIT]

It exits 1 when any function is longer (the test suite runs it).

A function's length runs from its `fn` line to the line of its closing
brace. Braces inside strings, characters and comments are not counted.
"""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
FN = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)")


def code_braces(line, state):
    """The net brace count of a line outside strings, chars and comments.
    state carries an open block comment or raw string between lines."""
    depth = 0
    i = 0
    while i < len(line):
        if state["block"]:
            end = line.find("*/", i)
            if end < 0:
                return depth
            state["block"] = False
            i = end + 2
            continue
        if state["raw"] is not None:
            end = line.find('"' + "#" * state["raw"], i)
            if end < 0:
                return depth
            i = end + 1 + state["raw"]
            state["raw"] = None
            continue
        if state["string"]:
            if line[i] == "\\":
                i += 2
                continue
            if line[i] == '"':
                state["string"] = False
            i += 1
            continue
        c = line[i]
        if line.startswith("//", i):
            return depth
        if line.startswith("/*", i):
            state["block"] = True
            i += 2
            continue
        raw = re.match(r'b?r(#*)"', line[i:])
        if raw and (i == 0 or not (line[i - 1].isalnum() or line[i - 1] == "_")):
            state["raw"] = len(raw.group(1))
            i += raw.end()
            continue
        if c == '"':
            state["string"] = True
        elif c == "'":
            char = re.match(r"'(\\.[^']*|[^'\\])'", line[i:])
            if char:
                i += char.end()
                continue
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        i += 1
    return depth


def functions(path):
    lines = path.read_text().splitlines()
    found = []
    for start, line in enumerate(lines):
        m = FN.match(line)
        if not m:
            continue
        state = {"block": False, "raw": None, "string": False}
        depth = 0
        opened = False
        for end in range(start, len(lines)):
            text = lines[end]
            if not opened and ";" in text.split("//")[0] and "{" not in text:
                break  # a declaration without a body
            delta = code_braces(text, state)
            if "{" in text:
                opened = True
            depth += delta
            if opened and depth <= 0:
                found.append((end - start + 1, m.group(6), start + 1))
                break
    return found


def main():
    limit = int(sys.argv[1]) if len(sys.argv) > 1 else 80
    long = []
    for path in sorted(ROOT.glob("crates/*/src/**/*.rs")):
        if "imagegate-testkit" in path.parts:
            continue
        for length, name, line in functions(path):
            if length > limit:
                long.append((length, f"{path.relative_to(ROOT)}:{line}", name))
    for length, where, name in sorted(long, reverse=True):
        print(f"{length:5d}  {where}  {name}")
    print(f"{len(long)} functions longer than {limit} lines")
    return 1 if long else 0


if __name__ == "__main__":
    sys.exit(main())
