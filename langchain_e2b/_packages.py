"""Package installs for ``install_packages``: spec validation, the command, and what it printed.

All I/O-free. The command checks for a network route before pip or npm reaches for the index:
without one they spend seconds (pip) to minutes (npm) retrying and then blame the package ("No
matching distribution"), never the missing network. Offline, it installs only from what the
sandbox has (so an already installed package still succeeds) and says so at once otherwise.
"""

from __future__ import annotations

import re
import shlex
from typing import Literal

from langchain_e2b.errors import E2BToolInputError

Manager = Literal["pip", "npm"]

OFFLINE_EXIT = 97
"""Exit code of the install command when the sandbox has no network and the packages are not
already there."""

_PIP_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_PIP_EXTRAS = r"(?:\[\s*[A-Za-z0-9._-]+(?:\s*,\s*[A-Za-z0-9._-]+)*\s*\])?"
_PIP_CLAUSE = r"(?:===|==|!=|<=|>=|~=|<|>)\s*[A-Za-z0-9.*+!_-]+"
_PIP_SPEC = re.compile(
    rf"^{_PIP_NAME}\s*{_PIP_EXTRAS}\s*(?:{_PIP_CLAUSE}(?:\s*,\s*{_PIP_CLAUSE})*)?$"
)
_NPM_SPEC = re.compile(
    r"^(?:@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*(?:@[A-Za-z0-9.^~<>=*_+-]+)?$"
)

_ZERO_V6 = "0" * 32


def _offline_guard(local_sources: str, config_files: str, config_keys: str, local: str) -> str:
    """Shell that runs ``local`` instead of the normal install when the network is unreachable.

    Unreachable means: no default route besides loopback's (IPv4 or IPv6), no proxy, none of the
    variables in ``local_sources`` and none of ``config_keys`` in ``config_files`` (they set a
    package source that may need no network). ``local`` installs from what is already there
    (an installed package still counts as installed); if it fails, the command exits with
    :data:`OFFLINE_EXIT`.
    """
    v4 = 'awk \'$1 != "lo" && $2 == "00000000" {f = 1} END {exit !f}\' /proc/net/route'
    v6 = (
        f'awk \'$10 != "lo" && $1 == "{_ZERO_V6}" && $2 == "00" {{f = 1}} END {{exit !f}}\' '
        "/proc/net/ipv6_route"
    )
    variables = "${HTTPS_PROXY}${https_proxy}${HTTP_PROXY}${http_proxy}" + local_sources
    return (
        f"if [ -r /proc/net/route ] && ! {v4} 2>/dev/null && ! {v6} 2>/dev/null "
        f'&& [ -z "{variables}" ] && ! grep -qsE "^\\s*({config_keys})" {config_files}; then\n'
        f"  {local} || exit {OFFLINE_EXIT}\n  exit 0\nfi\n"
    )


# Messages pip and npm print when they cannot reach the network at all.
_NETWORK_ERRORS = re.compile(
    r"Temporary failure in name resolution|Name or service not known|Network is unreachable"
    r"|Failed to establish a new connection|No route to host|getaddrinfo (?:ENOTFOUND|EAI_AGAIN)"
    r"|\bENETUNREACH\b|\bEAI_AGAIN\b|\bENOTFOUND\b",
)

# Offline, whether the specs are installed already, in a tenth of pip's start-up time; prints the
# line pip prints for each, so that the summary reads the same either way.
_ALREADY_INSTALLED = """\
import sys
from importlib.metadata import PackageNotFoundError, version
try:
    from packaging.requirements import Requirement
except ImportError:
    from pip._vendor.packaging.requirements import Requirement
missing = 0
for spec in sys.argv[1:]:
    wanted = Requirement(spec)
    try:
        found = version(wanted.name)
    except PackageNotFoundError:
        missing += 1
        continue
    if wanted.specifier.contains(found, prereleases=True):
        print(f"Requirement already satisfied: {wanted.name} ({found})")
    else:
        missing += 1
sys.exit(1 if missing else 0)
"""

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def validate_package_spec(spec: str, manager: Manager) -> str:
    """Return the spec stripped, or raise a model-readable error if it is not a plain package spec.

    Only names with optional extras and version constraints pass, so no URL, path, option or
    shell syntax can reach the install command.
    """
    value = spec.strip()
    pattern = _PIP_SPEC if manager == "pip" else _NPM_SPEC
    if not pattern.fullmatch(value):
        example = "'pandas' or 'numpy>=1.26'" if manager == "pip" else "'lodash' or 'zod@3'"
        raise E2BToolInputError(
            f"{spec!r} is not a valid {manager} package spec. Use a package name with an optional "
            f"version, like {example}; URLs, paths and options are not allowed."
        )
    return value


def install_command(packages: list[str], manager: Manager) -> str:
    """The shell command that installs ``packages`` (validated and quoted).

    Without network (see :func:`_offline_guard`) it only installs from what the sandbox already
    has, at once, and exits with :data:`OFFLINE_EXIT` if that is not enough.
    """
    if not packages:
        raise E2BToolInputError("packages must list at least one package.")
    specs = " ".join(shlex.quote(validate_package_spec(p, manager)) for p in packages)
    if manager == "pip":
        pip = "python3 -m pip install --disable-pip-version-check --no-input --progress-bar off"
        guard = _offline_guard(
            "${PIP_FIND_LINKS}${PIP_NO_INDEX}${PIP_INDEX_URL}",
            "/etc/pip.conf ~/.pip/pip.conf ~/.config/pip/pip.conf ${PIP_CONFIG_FILE}",
            "find-links|index-url|no-index",
            f"python3 -c {shlex.quote(_ALREADY_INSTALLED)} {specs}",
        )
        return f"{guard}{pip} --retries 1 {specs}"
    npm = "npm install --no-fund --no-audit --no-color --loglevel=error"
    guard = _offline_guard(
        "${npm_config_offline}${npm_config_registry}",
        "~/.npmrc",
        "registry|offline",
        f"{npm} --offline {specs}",
    )
    return f"{guard}{npm} {specs}"


def name_of(spec: str) -> str:
    """The package name in a validated spec (``numpy>=1.26`` -> ``numpy``)."""
    match = re.match(r"@?[A-Za-z0-9._~/-]+", spec.strip())
    return match.group(0) if match else spec


def strip_ansi(text: str) -> str:
    """``text`` without terminal colour and cursor escape sequences."""
    return _ANSI.sub("", text)


def offline_message(packages: list[str], manager: Manager) -> str:
    """What the model (and the developer reading the transcript) needs to know about no network."""
    names = ", ".join(packages)
    return (
        f"Could not install {names}: this sandbox has no internet access, so {manager} cannot "
        "download packages. Work with what is already installed (run_command "
        f"`{'pip list' if manager == 'pip' else 'npm ls'}` shows it). Internet access is a "
        "setting of the sandbox backend: the local runtime isolates sandboxes unless it is "
        "started with `langchain-e2b local serve --allow-internet` (or "
        "`LocalRuntime(allow_internet=True)`); alternatively put wheel files in the sandbox "
        "and install them with `pip install --no-index --find-links <dir> <package>`."
    )


def is_network_failure(output: str) -> bool:
    """Whether a failed install's output shows that the network could not be reached."""
    return bool(_NETWORK_ERRORS.search(output))


def summarize(
    stdout: str, packages: list[str], manager: Manager
) -> tuple[list[str], list[str], str]:
    """Split a successful install's output into installed, already present and the rest.

    Returns:
        Packages newly installed (with versions, as pip names them), the requested packages that
        were already installed, and what else the installer printed (warnings), ANSI-free.
    """
    lines = strip_ansi(stdout).splitlines()
    if manager == "npm":
        fresh = any(re.match(r"\s*(added|changed) \d+ package", line) for line in lines)
        return (list(packages), [], "") if fresh else ([], list(packages), "")
    installed: list[str] = []
    present: list[str] = []
    rest: list[str] = []
    for line in lines:
        if line.startswith("Successfully installed "):
            installed.extend(line.removeprefix("Successfully installed ").split())
        elif line.startswith("Requirement already satisfied: "):
            if " (from " not in line:  # a dependency, not something the model asked for
                present.append(line.removeprefix("Requirement already satisfied: ").split()[0])
        elif not _pip_progress(line):
            rest.append(line)
    return installed, present, "\n".join(rest).strip()


_PIP_PROGRESS = (
    "Collecting ",
    "Downloading ",
    "Using cached ",
    "Installing collected packages",
    "Attempting uninstall",
    "Found existing installation",
    "Uninstalling ",
    "Successfully uninstalled",
    "Preparing metadata",
    "Building wheel",
    "Created wheel",
    "Stored in directory",
    "Building wheels for collected packages",
    "Processing ",
    "Obtaining ",
    "Getting requirements",
    "Installing build dependencies",
    "Looking in indexes",
    "Looking in links",
    "Defaulting to user installation",
)


def _pip_progress(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith(_PIP_PROGRESS)


__all__ = [
    "OFFLINE_EXIT",
    "Manager",
    "install_command",
    "is_network_failure",
    "name_of",
    "offline_message",
    "strip_ansi",
    "summarize",
    "validate_package_spec",
]
