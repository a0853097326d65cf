"""JavaScript, TypeScript and bash contexts through the real SDK, in the local runtime's jail."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from e2b import SandboxException
from e2b_code_interpreter import OutputMessage, Sandbox

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(240),
    pytest.mark.skipif(bool(os.environ.get("E2B_API_KEY")), reason="this runtime's kernels"),
]


@pytest.fixture(scope="module")
def sandbox(e2b_connection: dict[str, Any]) -> Iterator[Sandbox]:
    sbx = Sandbox.create(envs={"FROM_CREATE": "created"}, **e2b_connection)
    try:
        yield sbx
    finally:
        sbx.kill()


def _processes(sandbox: Sandbox) -> str:
    return sandbox.commands.run("ps -eo args").stdout


def test_other_kernels_start_only_when_used(e2b_connection: dict[str, Any]) -> None:
    sbx = Sandbox.create(**e2b_connection)
    try:
        assert sbx.run_code("1 + 1").text == "2"
        before = _processes(sbx)
        assert "deno jupyter" not in before
        assert "bash_kernel" not in before
        assert [c.language for c in sbx.list_code_contexts()] == ["python"]
        assert sbx.run_code("1 + 1", language="js").text == "2"
        assert "deno jupyter" in _processes(sbx)
        assert "bash_kernel" not in _processes(sbx)
    finally:
        sbx.kill()


@pytest.mark.parametrize("language", ["js", "javascript"])
def test_javascript_state_output_and_results(sandbox: Sandbox, language: str) -> None:
    out: list[OutputMessage] = []
    first = sandbox.run_code(
        "let counter = 40; console.log('hello from', 'deno'); counter + 2",
        language=language,
        on_stdout=out.append,
    )
    assert first.error is None
    assert first.text == "42"
    assert [m.line for m in out] == ["hello from deno\n"]
    second = sandbox.run_code("counter += 1; ({ counter })", language=language)
    assert second.text == "{ counter: 41 }"


def test_javascript_error_and_stderr(sandbox: Sandbox) -> None:
    failed = sandbox.run_code("console.error('careful'); throw new TypeError('bad value')", "js")
    assert failed.error is not None
    assert failed.error.name == "TypeError"
    assert failed.error.value == "bad value"
    assert failed.logs.stderr == ["careful\n"]


def test_typescript_types_and_syntax_errors(sandbox: Sandbox) -> None:
    typed = sandbox.run_code(
        "interface Point { x: number; y: number }\n"
        "const p: Point = { x: 3, y: 4 };\nMath.hypot(p.x, p.y)",
        language="typescript",
    )
    assert typed.error is None
    assert typed.text == "5"
    broken = sandbox.run_code("const a: number = 1;\nconst b = ;", language="ts")
    assert broken.error is not None
    assert broken.error.name == "SyntaxError"
    assert "line 2" in broken.error.value
    assert "const b = ;" in broken.error.traceback


def test_deno_in_the_jail(sandbox: Sandbox) -> None:
    where = sandbox.run_code(
        "[Deno.cwd(), Deno.env.get('HOME'), Deno.env.get('FROM_CREATE'), Deno.env.get('DENO_DIR')]"
        ".join(' ')",
        language="js",
    )
    assert where.error is None
    assert where.text == "/home/user /home/user created /home/user/.cache/deno"
    # Files it writes are the sandbox's files.
    sandbox.run_code("Deno.writeTextFileSync('from-deno.txt', 'written by deno')", language="js")
    assert sandbox.files.read("/home/user/from-deno.txt") == "written by deno"
    # No network: the fetch fails instead of hanging.
    offline = sandbox.run_code(
        "await fetch('http://192.0.2.1/').then(() => 'reached', (e) => 'failed: ' + e.name)",
        language="js",
        timeout=60,
    )
    assert offline.text is not None
    assert offline.text.startswith("failed")


def test_javascript_env_vars_per_run(sandbox: Sandbox) -> None:
    run = sandbox.run_code("Deno.env.get('ONLY_NOW')", language="js", envs={"ONLY_NOW": "yes"})
    assert run.text == "yes"
    after = sandbox.run_code("String(Deno.env.get('ONLY_NOW'))", language="js")
    assert after.text == "undefined"


def test_javascript_display_image(sandbox: Sandbox) -> None:
    png = (
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQ"
        "AAAABJRU5ErkJggg=="
    )
    shown = sandbox.run_code(
        f"Deno.jupyter.display({{ 'image/png': '{png}' }}, {{ raw: true }}); 'done'", language="js"
    )
    assert shown.error is None
    assert [r.png for r in shown.results if r.png] == [png]


def test_bash_state_errors_and_env(sandbox: Sandbox) -> None:
    first = sandbox.run_code("cd /tmp && GREETING=hi && echo $GREETING; pwd", language="bash")
    assert first.error is None
    assert first.logs.stdout == ["hi\n", "/tmp\n"] or "".join(first.logs.stdout) == "hi\n/tmp\n"
    second = sandbox.run_code("echo $GREETING from $(pwd) $FROM_CREATE", language="bash")
    assert "".join(second.logs.stdout) == "hi from /tmp created\n"
    failed = sandbox.run_code("ls /no/such/path", language="bash")
    assert failed.error is not None
    assert failed.error.value == "exit status 2"
    assert "No such file" in "".join(failed.logs.stdout)
    scoped = sandbox.run_code("echo ${PER_RUN:-unset}", language="bash", envs={"PER_RUN": "set"})
    assert "".join(scoped.logs.stdout) == "set\n"
    unscoped = sandbox.run_code("echo ${PER_RUN:-unset}", language="bash")
    assert "".join(unscoped.logs.stdout) == "unset\n"


def test_bash_rejects_names_the_shell_cannot_hold(sandbox: Sandbox) -> None:
    with pytest.raises(SandboxException) as info:
        sandbox.run_code("echo", language="bash", envs={"NOT-A-NAME": "x"})
    assert "NOT-A-NAME" in str(info.value)


def test_contexts_of_each_language(sandbox: Sandbox) -> None:
    for language, code, expected in [
        ("javascript", "typeof Deno", "object"),
        ("typescript", "const n: number = 2; n", "2"),
    ]:
        context = sandbox.create_code_context(language=language, cwd="/tmp")
        assert context.language == language
        assert context.cwd == "/tmp"
        assert context.id in [c.id for c in sandbox.list_code_contexts()]
        assert sandbox.run_code(code, context=context).text == expected
        sandbox.restart_code_context(context)
        assert sandbox.run_code(code, context=context).text == expected
        sandbox.remove_code_context(context)
        assert context.id not in [c.id for c in sandbox.list_code_contexts()]
    shell = sandbox.create_code_context(language="bash", cwd="/tmp")
    out = sandbox.run_code("pwd", context=shell)
    assert "".join(out.logs.stdout) == "/tmp\n"
    sandbox.remove_code_context(shell)


def test_javascript_interrupt_keeps_the_kernel(sandbox: Sandbox) -> None:
    context = sandbox.create_code_context(language="js")
    try:
        sandbox.run_code("globalThis.kept = 'yes'", context=context)
        with pytest.raises(Exception, match="timed out"):
            sandbox.run_code("while (true) {}", context=context, timeout=1)
        after = sandbox.run_code("globalThis.kept", context=context)
        assert after.text == "yes"
        assert after.logs.stderr == []
    finally:
        sandbox.remove_code_context(context)


@pytest.mark.parametrize("language", ["r", "java"])
def test_r_and_java_say_what_is_missing(sandbox: Sandbox, language: str) -> None:
    with pytest.raises(SandboxException) as info:
        sandbox.run_code("1", language=language)
    message = str(info.value)
    assert "400" in message
    assert "no kernel for" in message
    assert "python, javascript, typescript, bash" in message
    with pytest.raises(SandboxException) as created:
        sandbox.create_code_context(language=language)
    assert "no kernel for" in str(created.value)


def test_bash_interrupt_keeps_the_shell(sandbox: Sandbox) -> None:
    context = sandbox.create_code_context(language="bash")
    try:
        sandbox.run_code("KEPT=yes", context=context)
        with pytest.raises(Exception, match="timed out"):
            sandbox.run_code("sleep 100", context=context, timeout=1)
        after = sandbox.run_code("echo $KEPT", context=context)
        assert "".join(after.logs.stdout) == "yes\n"
        assert after.logs.stderr == []
    finally:
        sandbox.remove_code_context(context)


def test_javascript_that_ignores_the_interrupt_gets_a_restarted_kernel(sandbox: Sandbox) -> None:
    context = sandbox.create_code_context(language="js")
    try:
        sandbox.run_code("globalThis.kept = 'yes'", context=context)
        with pytest.raises(Exception, match="timed out"):
            # An await that never settles: an interrupt cannot end it.
            sandbox.run_code("await new Promise(() => {})", context=context, timeout=1)
        after = sandbox.run_code("String(globalThis.kept)", context=context)
        assert after.text == "undefined"
        (notice,) = after.logs.stderr
        assert "kernel was restarted" in notice
        assert "lost" in notice
    finally:
        sandbox.remove_code_context(context)
