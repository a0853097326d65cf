"""What a jail holds: the sandbox user, the runtime's Python, ``sudo`` and the base environment.

Inside a jail the sandbox runs as ``user`` (uid 1000) with home ``/home/user``, as on E2B. The
runtime's own interpreter, with its installed packages and this package, appears at fixed
neutral paths under ``/opt/e2b`` (``prepare_python``), so no host directory name shows inside.
The jail's ``/etc/passwd``, ``/etc/group`` and ``/etc/profile`` are ours
(``write_identity_files``), and ``sudo`` is a shim that runs the command as the same user: a
jail has no privilege to give. ``jail`` mounts all of this into a jail and starts it.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from langchain_e2b.local._common import deno_package_binary

JAIL_HOME = "/home/user"
JAIL_USER = "user"
JAIL_UID = 1000
JAIL_PYTHON_HOME = "/opt/e2b/python"
JAIL_VENV = "/opt/e2b/venv"
JAIL_LIB = "/opt/e2b/lib"

# The ``langchain_e2b`` package directory, bound into jails at ``JAIL_LIB``. Found from this
# file rather than by importing the package, whose ``__init__`` imports LangChain.
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))


@dataclass(frozen=True)
class PythonLayout:
    """Where the host's Python appears inside jails."""

    binds: tuple[tuple[str, str], ...]
    python: str
    env: dict[str, str]


def _under_usr(path: str) -> bool:
    return path == "/usr" or path.startswith("/usr/")


# ``sudo`` inside a jail. E2B gives the sandbox user passwordless sudo, and code written for E2B
# uses it (``sudo pip install ...``). A jail has no privilege to give: the command runs as the
# same user, with no new privilege, so it works wherever the user alone may do what it does.
# It understands sudo's common options, and says plainly when one cannot be honoured.
_SUDO = """#!{python} -IS
import os, shlex, sys

NAME = "sudo (langchain-e2b sandbox)"
SELF = {user!r}
# Options that take a value, short and long.
VALUED = set("ugpCDhrtTRU")
LONG_VALUED = {{"--user", "--group", "--prompt", "--close-from", "--chdir", "--host", "--role",
               "--type", "--other-user", "--chroot", "--command-timeout"}}
NOTE = (" (in this sandbox sudo runs commands as '" + SELF + "' itself, with no new privilege)")
USAGE = "usage: sudo [-EHiknsS] [-u user] [-D directory] [VAR=value] [command [args]]" + NOTE
# The short options this shim acts on, by their long names.
SHORT = {{"u": "--user", "D": "--chdir", "i": "--login", "s": "--shell", "v": "--validate",
         "K": "--remove-timestamp", "l": "--list", "V": "--version", "h": "--help"}}
options = {{"--user": None, "--chdir": None, "--login": False, "--shell": False}}


def die(message, status=1):
    sys.stderr.write("sudo: " + message + "\\n")
    sys.exit(status)


def option(name, value=None):
    # One option, by its long name; options not named here are accepted and ignored.
    if name in ("--user", "--chdir"):
        options[name] = value
    elif name in ("--login", "--shell"):
        options[name] = True
    elif name in ("--validate", "--remove-timestamp"):
        sys.exit(0)
    elif name == "--list":
        print("User " + SELF + " may run the following commands: (ALL) NOPASSWD: ALL" + NOTE)
        sys.exit(0)
    elif name == "--version":
        print(NAME)
        sys.exit(0)
    elif name == "--help":
        print(USAGE)
        sys.exit(0)


args = sys.argv[1:]
while args and args[0].startswith("-") and args[0] != "-":
    arg = args.pop(0)
    if arg == "--":
        break
    if arg.startswith("--"):
        name, eq, value = arg.partition("=")
        if name in LONG_VALUED and not eq:
            if not args:
                die("option '" + name + "' requires an argument")
            value = args.pop(0)
        option(name, value)
        continue
    for index, flag in enumerate(arg[1:], start=1):
        if flag in VALUED and not (flag == "h" and arg == "-h" and not args):
            value = arg[index + 1:]
            if not value:
                if not args:
                    die("option requires an argument -- '" + flag + "'")
                value = args.pop(0)
            if flag in "uD":
                option(SHORT[flag], value)
            break
        if flag in SHORT:
            option(SHORT[flag])
        elif flag not in "EHnSAbPBk":
            die("invalid option -- '" + flag + "'")

user, chdir = options["--user"], options["--chdir"]
login, shell = options["--login"], options["--shell"]
if user is not None and user not in ("root", "#0", "0", SELF, "#1000", "1000"):
    die("cannot run as '" + user + "'" + NOTE)
while args and "=" in args[0] and args[0].split("=", 1)[0].isidentifier():
    key, value = args.pop(0).split("=", 1)
    os.environ[key] = value
os.environ.update(SUDO_USER=SELF, SUDO_UID=str(os.getuid()), SUDO_GID=str(os.getgid()))
os.environ["SUDO_COMMAND"] = shlex.join(args)
if chdir is not None:
    try:
        os.chdir(chdir)
    except OSError as exc:
        die("unable to change directory to " + chdir + ": " + exc.strerror)
if login:
    command = ["/bin/bash", "-l"] + (["-c", shlex.join(args)] if args else [])
elif shell:
    command = [os.environ.get("SHELL") or "/bin/sh"] + (["-c", " ".join(args)] if args else [])
elif args:
    command = args
else:
    die(USAGE)
try:
    os.execvp(command[0], command)
except OSError:
    die(command[0] + ": command not found")
"""


def prepare_python(run_dir: Path) -> PythonLayout:
    """Map the runtime's own Python (stdlib, site-packages, this package) into jails.

    The interpreter that runs the runtime is the one sandboxes get, with its installed packages
    (ipykernel, numpy, pandas, matplotlib, ...). Paths outside ``/usr`` are bound at fixed
    neutral locations so no host directory name (such as ``/root/...``) shows inside. Inside, it
    is a plain interpreter with the runtime's site-packages on ``PYTHONPATH`` rather than a
    virtual environment, so ``pip install`` works and lands in ``~/.local`` (user site), which
    the kernel and every later process see.
    """
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    binds: list[tuple[str, str]] = []
    env: dict[str, str] = {"PIP_BREAK_SYSTEM_PACKAGES": "1"}
    base = os.path.realpath(sys.base_prefix)
    if _under_usr(base):
        base_python = os.path.join(base, "bin", version)
    else:
        binds.append((base, JAIL_PYTHON_HOME))
        base_python = f"{JAIL_PYTHON_HOME}/bin/{version}"
        libdir = sysconfig.get_config_var("LIBDIR") or ""
        if libdir and os.path.realpath(libdir).startswith(base):
            env["LD_LIBRARY_PATH"] = JAIL_PYTHON_HOME + os.path.realpath(libdir)[len(base) :]

    venv_dir = run_dir / "venv"
    bindir = venv_dir / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    for name in ("python", "python3", version):
        link = bindir / name
        if not link.is_symlink():
            link.symlink_to(base_python)
    for name, module in (("pip", "pip"), ("pip3", "pip"), ("jupyter", "jupyter")):
        script = bindir / name
        script.write_text(f'#!/bin/sh\nexec {JAIL_VENV}/bin/python -m {module} "$@"\n')
        script.chmod(0o755)
    sudo = bindir / "sudo"
    sudo.write_text(_SUDO.format(python=f"{JAIL_VENV}/bin/python", user=JAIL_USER))
    sudo.chmod(0o755)
    binds.append((str(venv_dir), JAIL_VENV))
    # JavaScript and TypeScript contexts run Deno's Jupyter kernel: one executable that the deno
    # package installs beside this Python's scripts. It goes where the kernels' PATH looks.
    deno = deno_package_binary()
    if deno:
        (bindir / "deno").touch()
        binds.append((os.path.realpath(deno), f"{JAIL_VENV}/bin/deno"))

    if sys.prefix != sys.base_prefix:
        site_target = f"{JAIL_VENV}/lib/{version}/site-packages"
        (venv_dir / "lib" / version / "site-packages").mkdir(parents=True, exist_ok=True)
        binds.append((os.path.realpath(sysconfig.get_paths()["purelib"]), site_target))
        env["PYTHONPATH"] = site_target
    binds.append((PACKAGE_DIR, f"{JAIL_LIB}/langchain_e2b"))
    return PythonLayout(binds=tuple(binds), python=f"{JAIL_VENV}/bin/python", env=env)


def write_identity_files(run_dir: Path) -> tuple[Path, ...]:
    """Write the jail's /etc/passwd, /etc/group and /etc/profile; return their paths.

    They sit together in one directory, laid over the host's ``/etc`` (see ``stage_binds``).

    uid 1000 is named ``user``. The host's /etc/profile would reset PATH in login shells (the
    SDK runs commands with ``bash -l``), hiding the sandbox's Python; ours keeps PATH.
    """
    etc = run_dir / "etc"
    etc.mkdir(exist_ok=True)
    passwd = etc / "passwd"
    group = etc / "group"
    profile = etc / "profile"
    passwd.write_text(
        "root:x:0:0:root:/root:/bin/bash\n"
        f"{JAIL_USER}:x:{JAIL_UID}:{JAIL_UID}::{JAIL_HOME}:/bin/bash\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    )
    group.write_text(f"root:x:0:\n{JAIL_USER}:x:{JAIL_UID}:\nnogroup:x:65534:\n")
    profile.write_text(
        "# Login shells of a langchain-e2b sandbox: PATH comes from the sandbox's environment.\n"
        "if [ -d /etc/profile.d ]; then\n"
        '  for i in /etc/profile.d/*.sh; do [ -r "$i" ] && . "$i"; done\n'
        "  unset i\n"
        "fi\n"
        'if [ -n "$BASH_VERSION" ] && [ -n "$PS1" ] && [ -f /etc/bash.bashrc ]; then\n'
        "  . /etc/bash.bashrc\n"
        "fi\n"
    )
    return passwd, group, profile


def user_env(layout: PythonLayout, home: str = JAIL_HOME) -> dict[str, str]:
    """The base environment of every process in a sandbox: nothing from the host's."""
    # npm's global prefix is the system's (read-only) unless told otherwise: ``npm install -g``
    # goes to the user's own prefix, as npm's documentation advises, and its commands are on PATH.
    npm_prefix = f"{home}/.npm-global"
    env = {
        "PATH": (
            f"{JAIL_VENV}/bin:{npm_prefix}/bin:"
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        ),
        "NPM_CONFIG_PREFIX": npm_prefix,
        "HOME": home,
        "USER": JAIL_USER,
        "LOGNAME": JAIL_USER,
        "SHELL": "/bin/bash",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TERM": "xterm",
        "MPLBACKEND": "Agg",
        "PYTHONUNBUFFERED": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "OPENBLAS_NUM_THREADS": "1",
    }
    env.update(layout.env)
    return env
