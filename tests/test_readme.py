"""The README stays a front page: at most 150 lines, and every link in it resolves on a clone."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_is_short():
    n = len((ROOT / "README.md").read_text(encoding="utf-8").splitlines())
    assert n <= 150, f"README.md has {n} lines; move the detail into docs/ (at most 150)"


def test_every_readme_link_resolves():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert links, "README.md links into the docs"
    missing = [link for link in links if not link.startswith(("http://", "https://", "mailto:"))
               and not (ROOT / link.split("#")[0]).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"
