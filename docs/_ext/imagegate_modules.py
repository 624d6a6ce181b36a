"""Sphinx directive ``.. imagegate-automodules::``: renders the sidecar
documentation of every module in plugins/modules (the *.yml sidecars of the
binary modules and the *.py doc stubs of action-only ones: DOCUMENTATION,
EXAMPLES, RETURN), the same source ansible-doc reads."""

import ast
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


def option_facts(o):
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
    return facts


def return_facts(r):
    facts = [r.get("type", "str")]
    if r.get("returned"):
        facts.append(f"returned {r['returned']}")
    return facts


def fields(items, facts, children, depth=0):
    """A nested bullet list of options (or return values): name, facts,
    description, then the children under ``children``."""
    lines = []
    pad = "   " * depth
    for name in sorted(items or {}):
        item = items[name] or {}
        lines += [f"{pad}- **{name}** ({'; '.join(facts(item))})", ""]
        for p in paragraphs(item.get("description")):
            lines += [f"{pad}  {p}", ""]
        if item.get(children):
            lines += fields(item[children], facts, children, depth + 1)
    return lines


def module_doc(path):
    """DOCUMENTATION, EXAMPLES and RETURN of a module: a binary module's
    sidecar (.yml), or the strings of a Python doc stub (.py)."""
    with open(path) as f:
        text = f.read()
    if path.endswith(".yml"):
        return yaml.safe_load(text)
    doc = {}
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            name = node.targets[0].id
            doc[name] = node.value.value if name == "EXAMPLES" else yaml.safe_load(node.value.value)
    return doc


def module_lines(path):
    doc = module_doc(path)
    d = doc["DOCUMENTATION"]
    name = f"imagegate.containers.{d['module']}"
    lines = [name, "-" * len(name), "", markup(d["short_description"]), ""]
    for p in paragraphs(d.get("description")):
        lines += [f"- {p}", ""]
    lines += ["**Options**", ""] + fields(d.get("options"), option_facts, "suboptions")
    if d.get("attributes"):
        lines += ["**Attributes**", ""]
        for attr, a in d["attributes"].items():
            text = " ".join(paragraphs(a.get("description")))
            lines += [f"- **{attr}**: {a.get('support')}. {text}", ""]
    lines += ["**Examples**", "", ".. code-block:: yaml", ""]
    lines += ["   " + line for line in doc["EXAMPLES"].rstrip().splitlines()] + [""]
    lines += ["**Return values**", ""] + fields(doc.get("RETURN"), return_facts, "contains") + [""]
    return lines


class AutoModules(Directive):
    has_content = False

    def run(self):
        paths = glob.glob(os.path.join(ROOT, "plugins", "modules", "*.yml"))
        # A binary module's .py is a stub whose documentation is its .yml.
        paths += [
            p for p in glob.glob(os.path.join(ROOT, "plugins", "modules", "*.py")) if not os.path.exists(p[:-3] + ".yml")
        ]
        for path in reversed(sorted(paths)):
            self.state_machine.insert_input(module_lines(path), path)
        return []


def setup(app):
    app.add_directive("imagegate-automodules", AutoModules)
    return {"parallel_read_safe": True}
