"""Sphinx directive ``.. imagegate-automodules::``: renders the sidecar
documentation of every module in plugins/modules (the *.yml sidecars of the
binary modules and the *.py doc stubs of action-only ones: DOCUMENTATION,
EXAMPLES, RETURN), the same source ansible-doc reads, with the doc fragments
of plugins/doc_fragments a module extends merged in as ansible-doc merges
them."""

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


COLLECTION = "imagegate.containers."


def fragment(name):
    """The documentation a doc fragment of this collection holds, parsed:
    ``imagegate.containers.<file>`` is the DOCUMENTATION string of the class
    ModuleDocFragment in plugins/doc_fragments/<file>.py, and
    ``imagegate.containers.<file>.<var>`` its string <VAR>, as Ansible
    names them. Read, not imported: no Ansible is needed here."""
    if not name.startswith(COLLECTION):
        raise ValueError(f"doc fragment {name}: only this collection's fragments can be merged here")
    file, _, var = name[len(COLLECTION) :].partition(".")
    path = os.path.join(ROOT, "plugins", "doc_fragments", f"{file}.py")
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "ModuleDocFragment":
            for stmt in node.body:
                if isinstance(stmt, ast.Assign) and [t.id for t in stmt.targets] == [(var or "DOCUMENTATION").upper()]:
                    return yaml.safe_load(stmt.value.value)
    raise ValueError(f"doc fragment {name}: {path} has no ModuleDocFragment.{(var or 'DOCUMENTATION').upper()}")


def merge_fragment(target, source):
    """Ansible's merge of a fragment into a module's documentation
    (ansible.utils.plugin_docs.merge_fragment): the module's value wins key
    by key in a mapping, lists are joined, any other value in both fails."""
    for key, value in source.items():
        if key in target:
            if isinstance(target[key], dict):
                value = {**value, **target[key]}
            elif isinstance(target[key], list):
                value = sorted(set(value + target[key]))
            else:
                raise ValueError(f"a doc fragment and the module both set {key}")
        target[key] = value


def add_fragments(doc):
    """Merges the fragments DOCUMENTATION extends into it, as ansible-doc
    does (ansible.utils.plugin_docs.add_fragments): options (and
    attributes) one by one, each keeping the module's keys over the
    fragment's, then the rest."""
    names = doc.pop("extends_documentation_fragment", None) or []
    for name in names.split(",") if isinstance(names, str) else names:
        frag = fragment(name.strip())
        for key in ("options", "attributes"):
            if key in frag:
                if key in doc:
                    merge_fragment(doc[key], frag.pop(key))
                else:
                    doc[key] = frag.pop(key)
        merge_fragment(doc, frag)
    return doc


def module_doc(path):
    """DOCUMENTATION, EXAMPLES and RETURN of a module: a binary module's
    sidecar (.yml), or the strings of a Python doc stub (.py); the doc
    fragments DOCUMENTATION extends are merged in."""
    with open(path) as f:
        text = f.read()
    if path.endswith(".yml"):
        doc = yaml.safe_load(text)
    else:
        doc = {}
        for node in ast.parse(text).body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                name = node.targets[0].id
                doc[name] = node.value.value if name == "EXAMPLES" else yaml.safe_load(node.value.value)
    add_fragments(doc["DOCUMENTATION"])
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
