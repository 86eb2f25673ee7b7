"""The library (`assistant/` outside its application shells) stands without ingest, the shells, the UI,
plotting or llama.cpp: `from assistant import Assistant` must need none of them (issue 10)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from .conftest import REPO

# The application shells that still live in assistant/ (they sit above both the library and ingest).
SHELLS = {"cli", "ui", "evaluation", "llm_server", "display"}
BLOCKED = ("ingest", "gradio", "matplotlib", "xllamacpp", *(f"assistant.{name}" for name in sorted(SHELLS)))


def _imported_names(path: Path) -> set[str]:
    """Every module an `import` names anywhere in the file, lazy imports inside functions included."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from .x import y -> assistant.x (and assistant.y for `from . import y`)
                base = "assistant" + (f".{node.module}" if node.module else "")
                names.add(base)
                if not node.module:
                    names.update(f"assistant.{alias.name}" for alias in node.names)
            elif node.module:
                names.add(node.module)
                if node.module == "assistant":
                    names.update(f"assistant.{alias.name}" for alias in node.names)
    return names


def test_no_library_module_imports_a_shell_ingest_or_ui_library():
    library = [p for p in sorted((REPO / "assistant").glob("*.py")) if p.stem not in SHELLS]
    assert len(library) >= 10, library
    offenders = {
        p.name: sorted(n for n in _imported_names(p) if any(n == b or n.startswith(b + ".") for b in BLOCKED))
        for p in library
    }
    assert not {name: bad for name, bad in offenders.items() if bad}


def test_the_library_imports_with_the_shells_and_ui_libraries_blocked():
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
