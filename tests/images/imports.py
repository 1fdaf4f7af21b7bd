"""The third-party modules a package's code imports, found by reading it (ast), not by running it:
`import` statements anywhere in a module count, those inside functions included (but not those under
`if TYPE_CHECKING:`), following the imports of kubenas and kubenas_trainer modules from the given roots."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OURS = {"kubenas": ROOT / "operator", "kubenas_trainer": ROOT / "trainer"}


def module_file(name: str) -> Path | None:
    parts = name.split(".")
    if parts[0] not in OURS:
        return None
    path = OURS[parts[0]].joinpath(*parts)
    if (path / "__init__.py").exists():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").exists() else None


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node but those under `if TYPE_CHECKING:` (imports for annotations only)."""
    out: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        out.append(node)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo += node.orelse
            continue
        todo += ast.iter_child_nodes(node)
    return out


def _imported(module: str, path: Path) -> list[str]:
    """Every name an import statement of the module brings in (a module, or a module's attribute)."""
    names: list[str] = []
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            names += [base] + [f"{base}.{alias.name}" for alias in node.names]
    return names


def third_party_imports(roots: list[str]) -> dict[str, set[str]]:
    """Top-level third-party module -> the kubenas modules that import it, from `roots` onward."""
    found: dict[str, set[str]] = {}
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        module = todo.pop()
        path = module_file(module)
        if module in seen or path is None:
            continue
        seen.add(module)
        for name in _imported(module, path):
            top = name.split(".")[0]
            if top in OURS:
                todo.append(name)
            elif top not in sys.stdlib_module_names and top != "__future__":
                found.setdefault(top, set()).add(module)
    return found


def package_modules(package: str) -> list[str]:
    base = OURS[package]
    return [
        ".".join(p.relative_to(base).with_suffix("").parts).removesuffix(".__init__")
        for p in sorted((base / package).rglob("*.py"))
    ]
