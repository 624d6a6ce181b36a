#!/usr/bin/env python3
"""The code blocks the documentation shows, for crates/imagegate-modules/tests/docs.rs.

Usage:
  extract.py blocks ROOT      every block, as a JSON list on stdout
  extract.py zuul ROOT        checks the Zuul configuration on stdin (YAML)
                              with Zuul's own schemas; one line per problem,
                              exit 1 if there is any

Sources: README.md and docs/*.md (fenced blocks), docs/*.rst and
roles/*/README.rst (``.. code-block::`` and ``::`` literal blocks), the
EXAMPLES of plugins/modules/*.yml and plugins/modules/*.py (one block per
task). A block that cannot run here is preceded by a marker with the reason:
``<!-- docs-test: skip REASON -->`` (markdown), ``.. docs-test: skip REASON``
(rst) or ``# docs-test: skip REASON`` (the line before a task in EXAMPLES).

Each block: file (relative to ROOT), line (1-based, of its first line), lang
("" when none is given), text (dedented), skip (the marker's reason or
null), data (the YAML parsed, for yaml blocks that parse) and key (its
first non-empty line, stripped: what the test names it by).
"""
import glob
import json
import os
import re
import sys

import yaml

MD_MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*skip\s+(.+?)\s*-->\s*$")
RST_MARKER = re.compile(r"^\s*\.\.\s+docs-test:\s*skip\s+(.+?)\s*$")
YAML_MARKER = re.compile(r"^\s*#\s*docs-test:\s*skip\s+(.+?)\s*$")
FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)")
CODE_BLOCK = re.compile(r"^(\s*)\.\.\s+(?:code-block|code|sourcecode)::\s*(\S*)")
LITERAL = re.compile(r"^(\s*)(?!\.\.\s)\S.*::\s*$")


def indent(line):
    return len(line) - len(line.lstrip())


def dedent(lines):
    width = min((indent(l) for l in lines if l.strip()), default=0)
    return "\n".join(l[width:] if l.strip() else "" for l in lines).strip("\n") + "\n"


def previous_marker(lines, i, pattern):
    """The reason of the marker on the last non-blank line before line i."""
    j = i - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    if j >= 0:
        m = pattern.match(lines[j])
        if m:
            return m.group(1)
    return None


def block(path, line, lang, text, skip):
    entry = {"file": path, "line": line, "lang": lang, "text": text, "skip": skip, "data": None}
    entry["key"] = next((l.strip() for l in text.splitlines() if l.strip()), "")
    if lang in ("yaml", "yml", "yaml+jinja"):
        try:
            entry["data"] = yaml.safe_load(text)
        except yaml.YAMLError as e:
            entry["yaml_error"] = str(e)
    return entry


def markdown(path, text):
    lines, out, i = text.splitlines(), [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, start = m.group(2), i
        i += 1
        body = []
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i])
            i += 1
        out.append(block(path, start + 2, m.group(3), dedent(body), previous_marker(lines, start, MD_MARKER)))
        i += 1
    return out


def rst_body(lines, i, outer):
    """The indented body starting after line i (blank lines first), as
    (first line index, lines)."""
    j = i + 1
    while j < len(lines) and not lines[j].strip():
        j += 1
    start, body = j, []
    while j < len(lines) and (not lines[j].strip() or indent(lines[j]) > outer):
        body.append(lines[j])
        j += 1
    return start, body


def rst(path, text):
    lines, out = text.splitlines(), []
    for i, line in enumerate(lines):
        m = CODE_BLOCK.match(line)
        lit = None if m else LITERAL.match(line)
        if not (m or lit):
            continue
        outer = indent(line)
        start, body = rst_body(lines, i, outer)
        # Options of the directive (":linenos:" and the like) are not code.
        while m and body and body[0].strip().startswith(":"):
            body, start = body[1:], start + 1
        if not any(l.strip() for l in body):
            continue
        lang = m.group(2) if m else ""
        out.append(block(path, start + 1, lang, dedent(body), previous_marker(lines, i, RST_MARKER)))
    return out


def examples(path, lines, first):
    """One block per task of an EXAMPLES text (lines, the first at file line
    `first`); a task runs to the next one, less its trailing blank lines and
    comments (a marker comment belongs to the task after it)."""
    text = dedent(lines).splitlines()
    starts = [k for k, line in enumerate(text) if line.startswith("- ")]
    out = []
    for n, k in enumerate(starts):
        body = text[k : starts[n + 1] if n + 1 < len(starts) else len(text)]
        while body and (not body[-1].strip() or body[-1].lstrip().startswith("#")):
            body.pop()
        out.append(block(path, first + k, "yaml", "\n".join(body) + "\n", previous_marker(text, k, YAML_MARKER)))
    return out


def module_sidecar(path, text):
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^EXAMPLES:\s*\|", line):
            j = i + 1
            while j < len(lines) and (not lines[j].strip() or lines[j].startswith((" ", "\t"))):
                j += 1
            return examples(path, lines[i + 1 : j], i + 2)
    return []


def module_stub(path, text):
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.match(r'^EXAMPLES\s*=\s*r?"""', line):
            j = i + 1
            while j < len(lines) and '"""' not in lines[j]:
                j += 1
            return examples(path, lines[i + 1 : j], i + 2)
    return []


def blocks(root):
    def rel(p):
        return os.path.relpath(p, root)

    def read(p):
        with open(p) as f:
            return f.read()

    out = []
    for p in [os.path.join(root, "README.md")] + sorted(glob.glob(os.path.join(root, "docs/*.md"))):
        out += markdown(rel(p), read(p))
    for p in sorted(glob.glob(os.path.join(root, "docs/*.rst"))) + sorted(glob.glob(os.path.join(root, "roles/*/README.rst"))):
        out += rst(rel(p), read(p))
    for p in sorted(glob.glob(os.path.join(root, "plugins/modules/*.yml"))):
        out += module_sidecar(rel(p), read(p))
    for p in sorted(glob.glob(os.path.join(root, "plugins/modules/*.py"))):
        out += module_stub(rel(p), read(p))
    return out


class AnySource:
    """Connections as a tenant file sees them: the connection names are the
    site's own (zuul.conf), so any name is taken as one."""

    def getSource(self, name):
        return name


def check_tenant(body, problems):
    from zuul import configloader

    parser = configloader.TenantParser(AnySource(), None, None, None, None, None, None, None)
    parser.getSchema()(body)
    # Zuul loads a tenant's projects in order; a project may only shadow
    # (give way to) projects listed before it.
    for connection, source in (body.get("source") or {}).items():
        for kind in ("config-projects", "untrusted-projects"):
            seen = []
            for project in source.get(kind, []):
                name, opts = (project, {}) if isinstance(project, str) else next(iter(project.items()))
                for winner in configloader.as_list(opts.get("shadow", [])):
                    if winner not in seen:
                        problems.append(f"tenant {body.get('name')}: {name} shadows {winner}, which is not listed before it")
                seen.append(name)


def zuul(root, text):
    import voluptuous as vs
    from zuul import configloader

    problems, jobs = [], set()
    for path in glob.glob(os.path.join(root, "zuul.d/*.yaml")):
        with open(path) as f:
            jobs |= {i["job"]["name"] for i in yaml.safe_load(f) or [] if "job" in i}
    data = yaml.safe_load(text)
    if not isinstance(data, list):
        problems.append("a Zuul configuration is a list of items")
        data = []
    for item in data:
        if not isinstance(item, dict) or len(item) != 1:
            problems.append("each item has exactly one key")
            continue
        kind, body = next(iter(item.items()))
        try:
            if kind == "job":
                configloader.JobParser.schema(body)
                parent = body.get("parent")
                if parent and parent not in jobs:
                    problems.append(f"job {body.get('name')}: parent {parent} is no job of zuul.d")
            elif kind == "tenant":
                check_tenant(body, problems)
            else:
                problems.append(f"no check for a '{kind}' item")
        except vs.Invalid as e:
            problems.append(f"{kind} {body.get('name')}: {e}")
    print(*problems, f"{len(data)} items checked; {len(problems)} problems", sep="\n")
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "blocks":
        json.dump(blocks(sys.argv[2]), sys.stdout, indent=1)
    elif len(sys.argv) == 3 and sys.argv[1] == "zuul":
        sys.exit(zuul(sys.argv[2], sys.stdin.read()))
    else:
        sys.exit(__doc__)
