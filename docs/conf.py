"""Sphinx configuration for the imagegate documentation."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "_ext"))

project = "imagegate"
copyright = "imagegate developers"
extensions = ["zuul_sphinx", "myst_parser", "imagegate_modules"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
master_doc = "index"
html_theme = "alabaster"
# Every role must have a README.rst; a missing one is a warning, and the
# docs build turns warnings into errors.
zuul_autoroles_warn_missing = True
