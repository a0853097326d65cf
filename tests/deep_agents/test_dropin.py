"""Code written for the other ``langchain-e2b`` package runs unchanged (its README, verbatim)."""

from __future__ import annotations

from typing import Any

from e2b import AsyncSandbox, Sandbox

from langchain_e2b import AsyncE2BSandbox, E2BSandbox


def test_wraps_an_sdk_sandbox_as_its_readme_shows(e2b_connection: dict[str, Any]) -> None:
    e2b_sandbox = Sandbox.create(**e2b_connection)
    backend = E2BSandbox(sandbox=e2b_sandbox)

    try:
        result = backend.execute("echo hello")
        assert result.output == "hello\n"
        assert result.exit_code == 0
        assert backend.id == e2b_sandbox.sandbox_id
        assert backend.write("/home/user/notes.txt", "from the backend").error is None
        # The same sandbox: the SDK object sees what the backend wrote, and the reverse.
        assert e2b_sandbox.files.read("/home/user/notes.txt") == "from the backend"
        e2b_sandbox.files.write("/home/user/sdk.txt", "from the sdk")
        assert backend.read("/home/user/sdk.txt").file_data["content"] == "from the sdk"  # type: ignore[index]
        assert backend.execute("exit 7").exit_code == 7
        # Closing the backend leaves the user's sandbox running: it is theirs to kill.
        backend.close()
        assert e2b_sandbox.is_running()
    finally:
        e2b_sandbox.kill()


async def test_wraps_an_async_sdk_sandbox_as_its_readme_shows(
    e2b_connection: dict[str, Any],
) -> None:
    e2b_sandbox = await AsyncSandbox.create(**e2b_connection)
    backend = AsyncE2BSandbox(sandbox=e2b_sandbox)

    try:
        result = await backend.aexecute("echo hello")
        assert result.output == "hello\n"
        assert backend.id == e2b_sandbox.sandbox_id
        upload = await backend.aupload_files([("/home/user/data.bin", bytes(range(256)))])
        assert upload[0].error is None
        assert await e2b_sandbox.files.read("/home/user/data.bin", format="bytes") == bytes(
            range(256)
        )
    finally:
        await e2b_sandbox.kill()


def test_the_other_packages_module_paths_import(e2b_connection: dict[str, Any]) -> None:
    # Its README imports from langchain_e2b.sandbox, and deepagents-code users from .provider,
    # whose provider takes a settings resolver.
    from langchain_e2b.provider import E2BProvider
    from langchain_e2b.sandbox import DEFAULT_WORKDIR
    from langchain_e2b.sandbox import E2BSandbox as FromSandboxModule

    assert FromSandboxModule is E2BSandbox
    assert DEFAULT_WORKDIR == "/home/user"
    settings = {
        "E2B_API_KEY": e2b_connection["api_key"],
        "E2B_SANDBOX_TIMEOUT": "120",
    }
    provider = E2BProvider(
        resolve_env_var=settings.get,
        **{k: v for k, v in e2b_connection.items() if k != "api_key"},
    )
    backend = provider.get_or_create()
    try:
        assert backend.execute("echo from-provider").output == "from-provider\n"
    finally:
        provider.delete(sandbox_id=backend.id)
