"""Pin every dependency in pyproject.toml to its lower bound, for ``make test-lowest``.

``make test-lowest`` installs the project with the printed constraints, so the test suite also
runs against the oldest releases the project claims to support (packages the project does not
name resolve to their newest allowed release). A requirement without a ``>=`` bound is an error:
a lower bound that is never tested is a guess.

Run:
    python .ci/lowest_constraints.py constraints [--skip-extra NAME ...]  # name==lower lines
    python .ci/lowest_constraints.py requirements EXTRA  # EXTRA's own lines, not self-references
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

try:
    import tomllib
except ImportError:  # Python 3.10: pip carries a TOML reader of its own
    from pip._vendor import tomli as tomllib

_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*([^;]*)(;.*)?$")
_LOWER = re.compile(r">=\s*([^,\s]+)")


def _split(requirement: str) -> tuple[str, str, str]:
    match = _REQUIREMENT.match(requirement)
    if match is None:
        raise SystemExit(f"cannot read the requirement {requirement!r}")
    name, _, specifier, marker = match.groups()
    return name, specifier, (marker or "").strip()


def constraints(project: dict[str, Any], skip: set[str]) -> list[str]:
    """``name==lower[; marker]`` for the project's dependencies and its extras but ``skip``."""
    requirements = list(project.get("dependencies", []))
    for extra, lines in project.get("optional-dependencies", {}).items():
        if extra not in skip:
            requirements += lines
    pins: dict[str, str] = {}
    for requirement in requirements:
        name, specifier, marker = _split(requirement)
        if name == project["name"]:  # the project's own extras, e.g. langchain-e2b[local]
            continue
        lower = _LOWER.search(specifier)
        if lower is None:
            raise SystemExit(
                f"{requirement!r} in pyproject.toml has no lower bound: add '>=' with the oldest "
                "release that passes the test suite"
            )
        key = re.sub(r"[-_.]+", "-", name).lower()
        pin = f"{name}=={lower.group(1)}" + (f" {marker}" if marker else "")
        if key in pins and pins[key] != pin:
            raise SystemExit(f"{name} has two different lower bounds in pyproject.toml")
        pins[key] = pin
    return list(pins.values())


def requirements(project: dict[str, Any], extra: str) -> list[str]:
    """The lines of one extra that name other packages (not the project's own extras)."""
    lines = project.get("optional-dependencies", {}).get(extra)
    if lines is None:
        raise SystemExit(f"pyproject.toml has no extra named {extra!r}")
    return [line for line in lines if _split(line)[0] != project["name"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["constraints", "requirements"])
    parser.add_argument("extra", nargs="?", help="the extra whose requirements to print")
    parser.add_argument("--skip-extra", action="append", default=[], metavar="NAME")
    parser.add_argument("--pyproject", type=Path, default=Path("pyproject.toml"))
    args = parser.parse_args()
    project = tomllib.loads(args.pyproject.read_text())["project"]
    if args.what == "constraints":
        lines = constraints(project, set(args.skip_extra))
    else:
        if not args.extra:
            parser.error("requirements needs the name of an extra")
        lines = requirements(project, args.extra)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
