"""The README and docs/ stay short, consistent with their JSON records, and point at things
that exist. Fast and JAX-free: it reads text files and runs the report script's check."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# A repository path in backticks or a command: a top-level folder, then no placeholders.
REPO_PATH = re.compile(r"(?<![\w/.~$-])((?:fno|tests|benchmarks|configs|launch|results|docs)/"
                       r"[\w./-]*\w)(?![\w{<*/-]|\.\w)(::\w+)?")
MODULE = re.compile(r"python -m (fno(?:\.\w+)+)")


def text(page: Path) -> str:
    return page.read_text(encoding="utf-8")


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(m[1]) for m in re.finditer(r"^#+ (.+)$", text(page), re.M)}


def test_report_script_reproduces_the_committed_docs():
    result = subprocess.run([sys.executable, str(ROOT / "results" / "make_report.py"), "--check"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, (
        "docs/ disagree with the committed JSON; run python results/make_report.py --docs\n"
        + result.stdout[-6000:] + result.stderr[-2000:])


def test_every_generated_block_is_rendered_by_the_script():
    names = [m[1] for p in PAGES for m in re.finditer(r"<!-- generated:(\S+) -->", text(p))]
    ends = [m[1] for p in PAGES for m in re.finditer(r"<!-- end generated:(\S+) -->", text(p))]
    assert names and sorted(names) == sorted(ends)


def test_readme_is_short():
    lines = text(ROOT / "README.md").count("\n")
    assert lines <= 250, f"README.md has {lines} lines; move detail to docs/"


def test_readme_layout_names_existing_files():
    block = text(ROOT / "README.md").split("\n## Layout", 1)[1].split("\n## ", 1)[0]
    folder, missing = "", []
    for line in block.splitlines():
        if not line.startswith("    "):
            continue
        if not line[4].isspace():  # a new entry: its folder (or a top-level file)
            first = line.split()[0]
            folder = first if first.endswith("/") else ""
        missing += [folder + name for name in re.findall(r"\b\w+\.(?:py|sh|sbatch)\b", line)
                    if not (ROOT / folder / name).exists()]
    assert not missing, f"README.md's Layout names files that do not exist: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_point_at_existing_files_and_headings(page):
    broken = []
    for target in LINK.findall(text(page)):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(target)
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(target)
    assert not broken, f"{page.name}: broken links {broken}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_named_files_tests_and_modules_exist(page):
    missing = []
    for m in REPO_PATH.finditer(text(page)):
        path, test = m[1], m[2]
        if not (ROOT / path).exists():
            missing.append(path)
        elif test and f"def {test[2:]}(" not in (ROOT / path).read_text():
            missing.append(path + test)
    for module in MODULE.findall(text(page)):
        parts = module.split(".")
        if not ((ROOT / Path(*parts)).with_suffix(".py").exists()
                or (ROOT / Path(*parts) / "__init__.py").exists()):
            missing.append(module)
    assert not missing, f"{page.name} names what does not exist: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_history_and_nothing_outside_the_clone(page):
    content = text(page)
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", content), "a date"
    assert not re.search(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{7,40}\b", content), \
        "a commit hash"
    assert "../shared" not in content and "/work/" not in content
