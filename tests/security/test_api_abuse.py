"""The API itself as the attack: traversal, symlinks, other sandboxes' ids, missing credentials."""

from __future__ import annotations

import httpx
import pytest
from e2b import AuthenticationException, FileNotFoundException, SandboxException
from e2b_code_interpreter import Sandbox

from tests.security.conftest import Hostile, sh


@pytest.fixture(scope="module")
def attacker(hostile: Hostile) -> Sandbox:
    return hostile.sandbox()


@pytest.fixture(scope="module")
def other(hostile: Hostile) -> Sandbox:
    sandbox = hostile.sandbox()
    sandbox.files.write("/home/user/mine.txt", "other sandbox's data")
    return sandbox


def _headers(sandbox_id: str, token: str | None, port: str = "49983") -> dict[str, str]:
    headers = {"E2b-Sandbox-Id": sandbox_id, "E2b-Sandbox-Port": port}
    if token is not None:
        headers["X-Access-Token"] = token
    return headers


def test_traversal_through_files_stays_in_the_jail(hostile: Hostile, attacker: Sandbox) -> None:
    for canary in hostile.canary_files:
        for path in (
            str(canary),
            "../../.." + str(canary),
            "/home/user/../../.." + str(canary),
            f"/proc/1/root{canary}",
        ):
            with pytest.raises(FileNotFoundException):
                attacker.files.read(path)
            assert attacker.files.exists(path) is False
    # Host files that are in the jail read-only stay read-only and stay unreadable if secret.
    with pytest.raises(SandboxException):
        attacker.files.read("../../etc/shadow")
    with pytest.raises(SandboxException):
        attacker.files.write("../../usr/lib/le2b-evil", "x")
    with pytest.raises(SandboxException):
        attacker.files.write("/etc/cron.d/le2b-evil", "x")


def test_symlink_escapes_through_files_and_rpcs(hostile: Hostile, attacker: Sandbox) -> None:
    canary = hostile.canary_files[0]
    for directory in hostile.data_dirs:
        sh(attacker, f"ln -sfn {directory} /home/user/data-{directory.name}")
    sh(attacker, f"ln -sfn {canary} /home/user/canary-link; ln -sfn {canary.parent} /home/user/d")
    with pytest.raises(FileNotFoundException):
        attacker.files.read("/home/user/canary-link")
    with pytest.raises(FileNotFoundException):
        attacker.files.list("/home/user/d")
    for directory in hostile.data_dirs:
        with pytest.raises(FileNotFoundException):
            attacker.files.list(f"/home/user/data-{directory.name}")
    # Writing through a dangling symlink lands (if anywhere) in the jail, never on the host.
    with pytest.raises(SandboxException):
        attacker.files.write("/home/user/d/planted.txt", "planted")
    assert not (canary.parent / "planted.txt").exists()
    # The listing of / is the jail's own.
    names = {entry.name for entry in attacker.files.list("/")}
    assert attacker.files.list("/root") == []  # the jail's own /root, not the host's
    assert names <= {
        "root",
        "bin",
        "dev",
        "etc",
        "home",
        "lib",
        "lib32",
        "lib64",
        "libx32",
        "opt",
        "proc",
        "run",
        "sbin",
        "tmp",
        "usr",
    }


def test_another_sandbox_with_this_sandboxs_token(
    hostile: Hostile, attacker: Sandbox, other: Sandbox
) -> None:
    token = attacker._envd_access_token
    assert token
    url = hostile.runtime.url
    with httpx.Client(base_url=url, timeout=30) as client:
        # The attacker's own token works for the attacker's own sandbox...
        own = client.get(
            "/files", params={"path": "/etc/hostname"}, headers=_headers(attacker.sandbox_id, token)
        )
        assert own.status_code == 200
        # ...and for nothing else.
        for headers in (
            _headers(other.sandbox_id, token),
            _headers(other.sandbox_id, None),
            _headers(other.sandbox_id, "wrong"),
            {**_headers(other.sandbox_id, None), "E2B-Traffic-Access-Token": token},
        ):
            stolen = client.get("/files", params={"path": "/home/user/mine.txt"}, headers=headers)
            assert stolen.status_code == 401
            assert "other sandbox's data" not in stolen.text
            rpc = client.post(
                "/process.Process/List",
                json={},
                headers={**headers, "Connect-Protocol-Version": "1"},
            )
            assert rpc.status_code == 401
            execute = client.post(
                "/execute",
                json={"code": "open('/home/user/mine.txt').read()"},
                headers={**headers, "E2b-Sandbox-Port": "49999"},
            )
            assert execute.status_code == 401
        # An id that is not a sandbox at all is simply not found.
        for bogus in ("../" + other.sandbox_id, other.sandbox_id + "x", ""):
            gone = client.get("/files", params={"path": "x"}, headers=_headers(bogus, token))
            assert gone.status_code == 502
    assert other.files.read("/home/user/mine.txt") == "other sandbox's data"


def test_control_plane_needs_the_api_key(hostile: Hostile, other: Sandbox) -> None:
    url = hostile.runtime.url
    with httpx.Client(base_url=url, timeout=30) as client:
        for headers in ({}, {"X-API-KEY": "wrong"}, {"X-API-KEY": hostile.runtime.api_key + "x"}):
            assert client.get("/v2/sandboxes", headers=headers).status_code == 401
            assert (
                client.delete(f"/sandboxes/{other.sandbox_id}", headers=headers).status_code == 401
            )
            created = client.post("/v2/sandboxes", json={"templateID": "base"}, headers=headers)
            assert created.status_code == 401
            info = client.get(f"/sandboxes/{other.sandbox_id}", headers=headers)
            assert info.status_code == 401
            assert other._envd_access_token not in info.text
    with pytest.raises(AuthenticationException):
        Sandbox.list(api_key="wrong", api_url=url).next_items()
    assert other.is_running()
