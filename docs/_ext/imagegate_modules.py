"""Sphinx directive ``.. imagegate-automodules::``: renders the sidecar
documentation of every module in plugins/modules/*.yml (DOCUMENTATION,
EXAMPLES, RETURN), the same source ansible-doc reads."""

import glob
import os
import re

import yaml
from docutils.parsers.rst import Directive

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def markup(text):
    """Ansible doc markup to reStructuredText."""
    text = str(text)
    text = re.sub(r"\bI\(([^)]*)\)", r"*\1*", text)
    text = re.sub(r"\b[CMOV]\(([^)]*)\)", r"``\1``", text)
    text = re.sub(r"\bU\(([^)]*)\)", r"\1", text)
    return text


def paragraphs(value):
    if value is None:
        return []
    return [markup(v) for v in (value if isinstance(value, list) else [value])]


def options(opts, depth=0):
    lines = []
    pad = "   " * depth
    for name in sorted(opts):
        o = opts[name] or {}
        kind = o.get("type", "str")
        if kind == "list" and o.get("elements"):
            kind = f"list of {o['elements']}"
        facts = [kind]
        if o.get("required"):
            facts.append("required")
        if "default" in o:
            facts.append(f"default: ``{o['default']!r}``")
        if o.get("choices"):
            facts.append("choices: " + ", ".join(f"``{c}``" for c in o["choices"]))
        lines.append(f"{pad}- **{name}** ({'; '.join(facts)})")
        lines.append("")
        for p in paragraphs(o.get("description")):
            lines.append(f"{pad}  {p}")
            lines.append("")
        if o.get("suboptions"):
            lines.extend(options(o["suboptions"], depth + 1))
    return lines


def returns(rets, depth=0):
    lines = []
    pad = "   " * depth
    for name in sorted(rets or {}):
        r = rets[name] or {}
        facts = [r.get("type", "str")]
        if r.get("returned"):
            facts.append(f"returned {r['returned']}")
        lines.append(f"{pad}- **{name}** ({'; '.join(facts)})")
        lines.append("")
        for p in paragraphs(r.get("description")):
            lines.append(f"{pad}  {p}")
            lines.append("")
        if r.get("contains"):
            lines.extend(returns(r["contains"], depth + 1))
    return lines


def module_lines(path):
    with open(path) as f:
        doc = yaml.safe_load(f)
    d = doc["DOCUMENTATION"]
    name = f"imagegate.containers.{d['module']}"
    lines = [name, "-" * len(name), "", markup(d["short_description"]), ""]
    for p in paragraphs(d.get("description")):
        lines += [f"- {p}", ""]
    lines += ["**Options**", ""] + options(d.get("options") or {})
    if d.get("attributes"):
        lines += ["**Attributes**", ""]
        for attr, a in d["attributes"].items():
            text = " ".join(paragraphs(a.get("description")))
            lines += [f"- **{attr}**: {a.get('support')}. {text}", ""]
    lines += ["**Examples**", "", ".. code-block:: yaml", ""]
    lines += ["   " + line for line in doc["EXAMPLES"].rstrip().splitlines()] + [""]
    lines += ["**Return values**", ""] + returns(doc.get("RETURN")) + [""]
    return lines


class AutoModules(Directive):
    has_content = False

    def run(self):
        for path in reversed(sorted(glob.glob(os.path.join(ROOT, "plugins", "modules", "*.yml")))):
            self.state_machine.insert_input(module_lines(path), path)
        return []


def setup(app):
    app.add_directive("imagegate-automodules", AutoModules)
    return {"parallel_read_safe": True}
