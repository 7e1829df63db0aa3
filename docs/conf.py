"""Sphinx configuration: builds offline (numpydoc API pages, the user guide, the gallery)."""

import os
import re
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

# the gallery runs every example on ../shared/data, which takes minutes; the docs-gallery
# CI target turns it on (SKINFLUENCE_DOCS_GALLERY=1), the plain build leaves it out
GALLERY = os.environ.get("SKINFLUENCE_DOCS_GALLERY", "0") == "1"
if not GALLERY:
    # pages left by an earlier gallery build need the extension's directives
    exclude_patterns.append("auto_examples")
else:
    extensions.append("sphinx_gallery.gen_gallery")
    sphinx_gallery_conf = {
        "examples_dirs": str(ROOT / "examples"),
        "gallery_dirs": "auto_examples",
        "filename_pattern": r"/plot_",
        "download_all_examples": False,
        "within_subsection_order": "FileNameSortKey",
        "image_scrapers": ("matplotlib",),
        "reset_modules": ("matplotlib",),
        "abort_on_example_error": True,
        "backreferences_dir": None,
        "show_memory": False,
        # its timing page loads scripts from CDNs: not in an offline site
        "write_computation_times": False,
        "plot_gallery": "True",
    }


def _link_gallery(app, docname, source):
    """Add the gallery to the main table of contents, only when it is built.

    A toctree entry for a page that does not exist is a warning (an error under ``-W``),
    and ``.. only::`` does not hide toctree entries, so the entry is added on reading.
    """
    if GALLERY and docname == "index":
        source[0] = re.sub(r"(\.\. toctree::\n(?:   .*\n|\n)*?   api\n)",
                           r"\1   auto_examples/index\n", source[0], count=1)


def setup(app):
    app.connect("source-read", _link_gallery)
