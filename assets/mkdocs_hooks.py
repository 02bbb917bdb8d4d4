"""mkdocs hook: publish the figures of ``assets/`` (made by ``assets/make_figures.py``) under ``assets/``.

The figures live at the repository root, next to the script that makes them, so that the README and
the docs share one copy; this hook adds them to the site as if they were in ``docs/assets/``.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File

ASSETS = Path(__file__).resolve().parent
SUFFIXES = (".svg", ".png")


def on_files(files, config):
    for path in sorted(ASSETS.iterdir()):
        if path.suffix in SUFFIXES:
            files.append(File(f"assets/{path.name}", src_dir=str(ASSETS.parent), dest_dir=config["site_dir"],
                              use_directory_urls=config["use_directory_urls"]))
    return files


def on_page_markdown(markdown, page, config, files):
    """Draw the import graph of ``src/tunecv`` where a page says ``<!-- import-graph -->``."""
    marker = "<!-- import-graph -->"
    if marker not in markdown:
        return markdown
    import importlib.util

    spec = importlib.util.spec_from_file_location("tunecv_import_graph", ASSETS / "import_graph.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return markdown.replace(marker, f"```mermaid\n{module.mermaid()}\n```")
