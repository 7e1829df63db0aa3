"""Sphinx configuration: builds offline (numpydoc API pages, the user guide, the gallery)."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

project = "skinfluence"
author = "skinfluence developers"
copyright = "2026, skinfluence developers"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
]
autosummary_generate = True
templates_path = ["_templates"]
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
autodoc_default_options = {"members": True}
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "auto_examples/*.md5", "auto_examples/*.json"]
html_theme = "alabaster"
mathjax_path = "mathjax/tex-chtml.js"  # no CDN: offline, formulas show as TeX unless MathJax is put there

# the gallery runs every example, which takes minutes; the docs target turns it on
if os.environ.get("SKINFLUENCE_DOCS_GALLERY", "0") == "1":
    extensions.append("sphinx_gallery.gen_gallery")
    sphinx_gallery_conf = {
        "examples_dirs": str(ROOT / "examples"),
        "gallery_dirs": "auto_examples",
        "filename_pattern": r"/plot_",
        "download_all_examples": False,
    }
