"""Sphinx configuration of chemtomo's documentation (``make docs``; warnings are errors)."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(HERE.parent / "src"))  # the checkout's chemtomo, even without an install

import chemtomo  # noqa: E402

project = "chemtomo"
author = "chemtomo developers"
copyright = "chemtomo developers, BSD-3-Clause"
version = release = chemtomo.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
    "chemtomo_docs",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "examples/README.txt", "**/GALLERY_HEADER.rst"]
root_doc = "index"

# MyST: $…$ maths, ::: fences, headings get anchors for in-page links.
myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# autodoc + numpydoc: the docstrings are NumPy style.
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"        # numpydoc's Parameters sections carry types and shapes
autosummary_generate = False      # the chemtomo-api directive writes the entries in place
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_validation_checks = set()  # numpydoc's style validation stays off; parse errors still fail

# The gallery: at most two small examples, run at build time (demo size or smaller).
sphinx_gallery_conf = {
    "examples_dirs": ["examples"],
    "gallery_dirs": ["tutorials/gallery"],
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
}
os.environ.setdefault("MPLBACKEND", "Agg")
# On a shared machine another Dask dashboard may hold port 8787; the examples' local cluster then
# picks another port and says so, which is not part of the lesson.
warnings.filterwarnings("ignore", message="Port 8787 is already in use", category=UserWarning)

html_theme = "pydata_sphinx_theme"
html_title = f"chemtomo {release}"
html_static_path = ["_static"]
html_theme_options = {
    "navigation_depth": 2,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": [],
}
html_sidebars = {"index": []}
nitpicky = False
