"""The code's structure: no import circle in ``hub/``, and what the code cites is in the repo."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _modules() -> dict[str, Path]:
    found = {}
    for path in (ROOT / "hub").rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The ``hub`` modules ``path`` imports, type-only imports included."""
    deps: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                deps.add(full if full in modules else node.module)
        elif isinstance(node, ast.Import):
            deps.update(alias.name for alias in node.names)
    return {dep for dep in deps if dep in modules}


def test_no_module_in_hub_imports_one_that_imports_it_back() -> None:
    modules = _modules()
    graph = {name: _imports(path, modules) - {name} for name, path in modules.items()}

    def reaches(start: str, goal: str) -> list[str] | None:
        stack, seen = [(start, [start])], {start}
        while stack:
            here, trail = stack.pop()
            for nxt in graph[here]:
                if nxt == goal:
                    return [*trail, goal]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*trail, nxt]))
        return None

    circles = [trail for name in graph if (trail := reaches(name, name))]
    assert not circles, f"{len(circles)} modules sit on an import circle, e.g. {circles[0]}"


def test_documents_the_code_cites_are_in_the_repo() -> None:
    cited: set[str] = set()
    for path in [*(ROOT / "hub").rglob("*.py"), ROOT / "README.md", ROOT / "pyproject.toml"]:
        text = path.read_text(encoding="utf-8")
        assert "DESIGN.md" not in text, f"{path} cites a design note outside the repo"
        cited.update(re.findall(r"docs/[\w./-]+\.md", text))
    assert "docs/architecture.md" in cited
    for document in cited:
        assert (ROOT / document).is_file(), f"{document} is cited but not in the repo"
