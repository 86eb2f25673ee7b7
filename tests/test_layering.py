"""The layers of issue 10: the library (`assistant/` outside `assistant/app/`) stands without ingest, the
eval suite, the application, the UI, plotting or llama.cpp (`from assistant import Assistant` needs none of
them); `ingest` and the eval suite (`eval/`, installed as `isnad_eval`) never import the application."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from .conftest import REPO

APPLICATION = ("assistant.app",)
BLOCKED = ("ingest", "isnad_eval", "gradio", "matplotlib", "xllamacpp", *APPLICATION)
PACKAGE_OF_FOLDER = {"assistant": "assistant", "ingest": "ingest", "eval": "isnad_eval"}


def _module_name(path: Path) -> str:
    """assistant/app/ui/app.py -> assistant.app.ui.app; eval/run.py -> isnad_eval.run."""
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    parts[0] = PACKAGE_OF_FOLDER[parts[0]]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_names(path: Path) -> set[str]:
    """Every module an `import` names anywhere in the file, lazy imports inside functions included, relative
    ones resolved against the file's own package."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolved_base(path, node)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # `from . import x` names a module
    return names


def _offenders(paths: list[Path], blocked: tuple[str, ...]) -> dict[str, list[str]]:
    found = {
        str(p.relative_to(REPO)): sorted(n for n in _imported_names(p) if any(n == b or n.startswith(b + ".")
                                                                              for b in blocked))
        for p in paths
    }
    return {name: bad for name, bad in found.items() if bad}


def test_no_library_module_imports_ingest_the_eval_the_application_or_ui_libraries():
    library = [p for p in sorted((REPO / "assistant").rglob("*.py")) if "app" not in p.relative_to(REPO).parts]
    assert len(library) >= 15, library
    assert not _offenders(library, BLOCKED)


def test_ingest_and_the_eval_suite_never_import_the_application():
    below = sorted((REPO / "ingest").rglob("*.py")) + sorted((REPO / "eval").glob("*.py"))
    assert not _offenders(below, (*APPLICATION, "gradio", "xllamacpp"))


def test_every_import_of_our_own_modules_resolves():
    """A lazy import inside a function fails only when that function runs: each one of ours is found here."""
    import importlib.util

    ours = ("assistant", "ingest", "isnad_eval")
    missing = {}
    for folder in PACKAGE_OF_FOLDER:
        for path in sorted((REPO / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom):
                    name = _resolved_base(path, node)
                elif isinstance(node, ast.Import):
                    name = node.names[0].name
                else:
                    continue
                if name.split(".")[0] in ours and importlib.util.find_spec(name) is None:
                    missing.setdefault(str(path.relative_to(REPO)), []).append(name)
    assert not missing


def _resolved_base(path: Path, node: ast.ImportFrom) -> str:
    """The module a `from ... import` names, relative levels resolved (bench/ scripts have no package)."""
    if not node.level:
        return node.module or ""
    module = _module_name(path)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    return ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))


def test_the_resolver_sees_relative_imports_for_what_they_are():
    """The checks above are only as good as this: `from ..core import x` in assistant/app/cli.py is
    assistant.core, and `from .run import y` in eval/ is isnad_eval.run."""
    assert "assistant.core" in _imported_names(REPO / "assistant" / "app" / "cli.py")
    assert "isnad_eval.run" in _imported_names(REPO / "eval" / "__init__.py")
    assert "assistant.app.display" in _imported_names(REPO / "assistant" / "app" / "ui" / "render.py")


def test_the_library_imports_with_the_application_and_ui_libraries_blocked():
    program = f"""
import importlib.abc, sys
BLOCKED = {BLOCKED!r}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise ImportError("blocked by test_layering: " + name)
        return None
sys.meta_path.insert(0, Block())
import assistant
from assistant import Assistant
from assistant import core, retrieval, store, extractive, generative, settings
print("ok", Assistant.__name__)
"""
    done = subprocess.run([sys.executable, "-c", program], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("ok Assistant"), done.stderr[-2000:]


def test_only_the_store_imports_chromadb():
    """The store owns its schema: collections, ids and the Chroma client are talked to in store.py only."""
    modules = [p for folder in ("assistant", "ingest", "bench") for p in sorted((REPO / folder).rglob("*.py"))]
    assert REPO / "assistant" / "store.py" in modules
    offenders = {
        str(p.relative_to(REPO)): sorted(n for n in _imported_names(p) if n == "chromadb" or n.startswith("chromadb."))
        for p in modules
        if p != REPO / "assistant" / "store.py"
    }
    assert not {name: bad for name, bad in offenders.items() if bad}
