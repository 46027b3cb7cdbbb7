"""Rules of the layout that a reader relies on (see the README's Architecture section)."""
from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "encodec_np"


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            yield node.level, node.module or "", [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield 0, alias.name, []


def test_nothing_outside_cli_imports_cli():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name == "cli":
            continue
        for level, module, names in _imports(path):
            parts = module.split(".")
            if "cli" in parts or (level and not module and "cli" in names):
                offenders.append(f"{path.relative_to(PACKAGE)}: {module or names}")
    assert not offenders, offenders


def test_cli_modules_use_no_private_names_of_the_library():
    offenders = []
    for path in (PACKAGE / "cli").glob("*.py"):
        for level, module, names in _imports(path):
            offenders += [f"{path.name}: {module}.{n}" for n in names if n.startswith("_") and n != "__version__"]
    assert not offenders, offenders


#: Private names of the standard library that the package relies on (argparse's
#: action list for the flag table, os._exit in crashed workers): not our own.
STDLIB_PRIVATE = {"_actions", "_HelpAction", "_SubParsersAction", "_exit"}


def test_no_module_reaches_into_another_objects_private_members():
    """``x._name`` only on ``self``/``cls``: other modules go through public seams (e.g. ``model.encode_segment``)."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
                    and node.attr not in STDLIB_PRIVATE):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {ast.unparse(node)}")
    assert not offenders, offenders


def test_every_subpackage_is_installed():
    """pyproject lists packages explicitly (kernels/ maps to encodec_np.kernels): a new folder must be listed too."""
    import tomllib

    listed = set(tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {"encodec_np." + ".".join(p.parent.relative_to(PACKAGE).parts) if p.parent != PACKAGE else "encodec_np"
             for p in PACKAGE.rglob("__init__.py")}
    assert found - listed == set(), f"add to [tool.setuptools] packages: {sorted(found - listed)}"


#: A numpydoc ``Parameters`` heading and its underline.
_PARAMETERS_SECTION = re.compile(r"^\s*Parameters[ \t]*\n\s*-{3,}[ \t]*$", re.M)


def _public_callables():
    """``(name, function, parameters besides self/cls)`` of each function in the public ``__all__`` lists.

    Classes there contribute their public methods, inherited ones too (from the library's own classes).
    """
    import encodec_np
    import encodec_np.dataset

    for module in (encodec_np, encodec_np.dataset):
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isfunction(obj):
                yield name, obj, list(inspect.signature(obj).parameters)
            elif inspect.isclass(obj):
                seen = set()
                for owner in obj.__mro__:
                    if not owner.__module__.startswith("encodec_np"):
                        continue
                    for attr, member in vars(owner).items():
                        if attr.startswith("_") or attr in seen:
                            continue
                        seen.add(attr)
                        if isinstance(member, staticmethod):
                            fn, skip = member.__func__, 0
                        elif isinstance(member, classmethod) or inspect.isfunction(member):
                            fn, skip = getattr(member, "__func__", member), 1
                        else:  # properties, constants
                            continue
                        yield f"{name}.{attr}", fn, list(inspect.signature(fn).parameters)[skip:]


def test_public_functions_document_their_parameters():
    """Every public function and method that takes parameters has a numpydoc ``Parameters`` section."""
    undocumented = sorted(name for name, fn, params in _public_callables()
                          if params and not _PARAMETERS_SECTION.search(inspect.getdoc(fn) or ""))
    assert not undocumented, f"add a Parameters section to their docstrings: {undocumented}"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts[:-1]) if rel.name == "__init__" else list(rel.parts)
    return ".".join(parts)


def _library_modules() -> dict:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(importer: str, path: Path, level: int, module: str, name: str, modules: dict) -> str | None:
    """The library module an import statement loads (``None``: outside the package)."""
    if level:
        base = importer.split(".") if path.name == "__init__.py" else importer.split(".")[:-1]
        base = base[:len(base) - (level - 1)]
        target = ".".join(base + ([module] if module else []))
    else:
        target = module
    if f"{target}.{name}" in modules:  # `from . import ecdc` loads the module ecdc
        return f"{target}.{name}"
    return target if target in modules else None


def test_library_modules_import_no_private_name_of_another():
    modules = _library_modules()
    offenders = []
    for name, path in modules.items():
        for level, module, names in _imports(path):
            for n in names:
                if n.startswith("_") and not n.startswith("__") and _resolve(name, path, level, module, n, modules):
                    offenders.append(f"{name}: {module}.{n}")
    assert not offenders, offenders


def test_library_has_no_import_cycle():
    """Function-level imports count too: they hide a cycle, they do not remove it."""
    modules = _library_modules()
    graph = {name: set() for name in modules}
    for name, path in modules.items():
        for level, module, names in _imports(path):
            for n in names or [""]:
                target = _resolve(name, path, level, module, n, modules)
                # a package's __init__ re-exports its modules: importing it from below is not a cycle of modules
                if target and target != name and target != "encodec_np":
                    graph[name].add(target)
    state, stack, cycles = {}, [], []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, [" -> ".join(c) for c in cycles]


