"""The floors of STYLE.md "Layers", checked on the source: a module imports only its own floor and below.

1 vocabulary (core.errors, core.settings, core.log_format, core.contract), 2 domain (models, pose, video,
pipeline, training, core.animate), 3 infrastructure (storage, network, webhooks, the job store),
4 execution (one job's run), 5 interfaces (service, worker, cli). Every import counts, also those inside
functions; ``if TYPE_CHECKING:`` imports count too, since a type names what the code depends on.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]

FLOORS: dict[str, int] = {
    "core.errors": 1, "core.settings": 1, "core.log_format": 1, "core.contract": 1,
    "core.models": 2, "core.pose": 2, "core.video": 2, "core.pipeline": 2, "core.training": 2, "core.animate": 2,
    "core.backends": 2,
    "core.storage": 3, "core.network": 3, "core.webhooks": 3, "core.jobs": 3,
    "core.execution": 4,
    "service": 5, "worker": 5, "cli": 5,
}  # fmt: skip
# The domain may use the generation parameters and the stage names, never a job record, queue or store.
DOMAIN_VOCABULARY = {"core.errors", "core.contract.params", "core.contract.stages"}
INTERFACE_FRAMEWORKS = {"fastapi", "starlette", "celery", "kombu", "uvicorn"}


def floor_of(module: str) -> int | None:
    """The floor of a first-party module (its longest listed prefix), None for third-party ones."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        floor = FLOORS.get(".".join(parts[:end]))
        if floor is not None:
            return floor
    return None


def is_first_party_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def source_modules() -> list[tuple[str, Path]]:
    modules = []
    for package in ("core", "service", "worker", "cli"):
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            modules.append((name, path))
    return modules


def imported_modules(path: Path, module: str) -> set[str]:
    """Every module ``path`` imports, relative imports resolved against ``module``."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package[: len(package) - node.level + 1], *filter(None, [base])])
            found.add(base)
            # `from core.contract import events` imports core.contract.events
            submodules = (f"{base}.{alias.name}" for alias in node.names)
            found.update(name for name in submodules if is_first_party_module(name))
    return found


MODULES = source_modules()


def test_every_source_module_sits_on_a_floor() -> None:
    unplaced = [name for name, _ in MODULES if floor_of(name) is None and name not in ("core",)]
    assert unplaced == [], f"add these to FLOORS (and STYLE's Layers): {unplaced}"


@pytest.mark.parametrize(("module", "path"), MODULES, ids=[name for name, _ in MODULES])
def test_module_imports_only_its_floor_and_below(module: str, path: Path) -> None:
    own = floor_of(module) or 0
    upward = sorted(
        imported for imported in imported_modules(path, module) if (floor_of(imported) or 0) > own
    )
    assert upward == [], f"{module} (floor {own}) imports from a higher floor: {upward}"


DOMAIN = [(name, path) for name, path in MODULES if floor_of(name) == 2]
CORE = [(name, path) for name, path in MODULES if name.startswith("core")]


@pytest.mark.parametrize(("module", "path"), DOMAIN, ids=[name for name, _ in DOMAIN])
def test_domain_imports_no_job_code(module: str, path: Path) -> None:
    vocabulary = {imported for imported in imported_modules(path, module) if floor_of(imported) == 1}
    # A package import such as `from core.contract import params` also names the package itself.
    job_code = sorted(vocabulary - DOMAIN_VOCABULARY - {"core.contract"})
    assert job_code == [], f"{module} is domain code and imports job vocabulary: {job_code}"


@pytest.mark.parametrize(("module", "path"), CORE, ids=[name for name, _ in CORE])
def test_core_imports_no_interface_framework(module: str, path: Path) -> None:
    frameworks = sorted(
        imported for imported in imported_modules(path, module) if imported.split(".")[0] in INTERFACE_FRAMEWORKS
    )
    assert frameworks == [], f"{module} imports {frameworks}; core knows no HTTP or queue framework"
