"""Keeps docs/benchmarks.md true to bench/results.

    python3 bench/docs.py           rewrites the generated blocks
    python3 bench/docs.py --check   fails (exit 1) on any drift (CI runs it)

A generated block in docs/benchmarks.md is

    <!-- generated from bench/results/<file>.txt -->
    ```text
    (the file's report: every line after its machine facts)
    ```
    <!-- end of generated block -->

and holds exactly what the file says. A generated table compares rows of
several files, one column per file:

    <!-- generated table
    files: promote-20261202-111650.txt promote-20261202-154750.txt
    cells: s / requests
    last: moved peak
    rows:
      imagegate: container_retag, one call
      skopeo: zuul-jobs method
    -->
    | run | ... (filled from the files) |
    <!-- end of generated table -->

`cells` is what each file's column shows of a row (`s`, `s / requests`),
`last` optional columns of the last file (`moved`: MiB moved, `peak`: peak
MiB), `rows` the report's row names and their labels. The check also fails when a result
file the page names is missing, and when a result file's header names a
commit that is not in the repository's history (one made on a branch that
was later rebased): a figure must lead to the code that made it. A header
may say why its commit is gone, after the hash, in parentheses that start
with "not in history"; such a header is reported but accepted.
"""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "benchmarks.md")
RESULTS = os.path.join(ROOT, "bench", "results")
BLOCK = re.compile(
    r"(<!-- generated from bench/results/(?P<file>[\w.-]+\.txt) -->\n)```text\n.*?```\n(<!-- end of generated block -->)",
    re.S,
)


def report(name):
    """The report part of a result file: the lines after its facts."""
    with open(os.path.join(RESULTS, name)) as f:
        text = f.read()
    _facts, _, rest = text.partition("\n\n")
    return rest.strip("\n") + "\n"


TABLE = re.compile(r"(<!-- generated table\n(?P<spec>.*?)-->\n).*?(<!-- end of generated table -->)", re.S)


def rows_of(name):
    """A result file's report rows: name -> (seconds, peak MiB, counted, MiB moved)."""
    out = {}
    counted = False
    for line in report(name).splitlines():
        words = line.split()
        if words[:3] == ["run", "median", "s"]:
            counted = "requests" in line or "round trips" in line
            continue
        if len(words) >= 3 and re.fullmatch(r"[a-z][a-z0-9_]*", words[0]) and re.fullmatch(r"[\d.]+", words[1]):
            try:
                nums = [float(w) for w in words[1 : 5 if counted else 3]]
            except ValueError:
                continue
            secs, peak = nums[0], nums[1]
            req, moved = (nums[2], nums[3]) if counted else (None, None)
            out[words[0]] = (secs, peak, req, moved)
    return out


def table(spec_text):
    import yaml

    spec = yaml.safe_load(spec_text)
    files = spec["files"].split()
    cells = spec.get("cells", "s")
    last = (spec.get("last") or "").split()
    data = [rows_of(f) for f in files]
    head = ["run"] + [f"`{f}` {cells}" for f in files]
    head += [{"moved": "MiB moved (last file)", "peak": "peak MiB (last file)"}[what] for what in last]
    lines = ["| " + " | ".join(head) + " |", "| --- |" + " ---: |" * (len(head) - 1)]
    for row, label in spec["rows"].items():
        cols = [label]
        for d in data:
            secs, _peak, req, _moved = d[row]
            cols.append(f"{secs:.2f} / {req:.0f}" if cells == "s / requests" else f"{secs:.2f}")
        for what in last:
            secs, peak, req, moved = data[-1][row]
            cols.append(f"{moved:.1f}" if what == "moved" else f"{peak:.1f}")
        lines.append("| " + " | ".join(cols) + " |")
    return "\n".join(lines) + "\n"


def generated(doc):
    def fill(m):
        return f"{m.group(1)}```text\n{report(m.group('file'))}```\n{m.group(3)}"

    def fill_table(m):
        return f"{m.group(1)}{table(m.group('spec'))}{m.group(3)}"

    return TABLE.sub(fill_table, BLOCK.sub(fill, doc))


def commit_problems():
    out = []
    for name in sorted(os.listdir(RESULTS)):
        with open(os.path.join(RESULTS, name)) as f:
            header = f.read().partition("\n\n")[0]
        m = re.search(r"^imagegate commit: ([0-9a-f]{7,40})(.*)$", header, re.M)
        if not m:
            continue
        known = subprocess.run(
            ["git", "-C", ROOT, "cat-file", "-e", m.group(1) + "^{commit}"], capture_output=True
        ).returncode == 0
        if not known and "(not in history" not in m.group(2):
            out.append(f"bench/results/{name}: commit {m.group(1)} is not in the history")
    return out


def main():
    check = "--check" in sys.argv[1:]
    with open(DOC) as f:
        doc = f.read()
    problems = []
    for name in sorted(set(re.findall(r"(?:bench/results/|`)((?:mirror|promote|roles|scale|cpu|wan)-\d{8}-\d{6}\.txt)", doc))):
        if not os.path.exists(os.path.join(RESULTS, name)):
            problems.append(f"docs/benchmarks.md names {name}, which bench/results does not hold")
    if problems:
        print("\n".join(problems))
        return 1
    new = generated(doc)
    if new != doc:
        if check:
            problems.append("docs/benchmarks.md: a generated block differs from its result file (run python3 bench/docs.py)")
        else:
            with open(DOC, "w") as f:
                f.write(new)
            print("docs/benchmarks.md: generated blocks rewritten")
    problems += commit_problems()
    if problems:
        print("\n".join(problems))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
