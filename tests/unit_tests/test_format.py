"""The I/O-free core: records, model text, truncation, image blocks, artifacts."""

from __future__ import annotations

import json

from e2b_code_interpreter import Execution, ExecutionError, Logs, Result
from e2b_fakes import PNG_1PX

from langchain_e2b import _format
from langchain_e2b._format import CodeResult, CommandResult


def _cell(**kwargs: object) -> CodeResult:
    return CodeResult(code="x", **kwargs)  # type: ignore[arg-type]


def test_code_result_from_sdk_execution_keeps_mime_data() -> None:
    execution = Execution(
        results=[
            Result(text="2", is_main_result=True),
            Result(png=PNG_1PX, text="<Figure>", extra={"application/x-custom": {"a": 1}}),
        ],
        logs=Logs(stdout=["a\n", "b\n"], stderr=["warn\n"]),
        error=ExecutionError("ValueError", "bad", "tb"),
        execution_count=3,
    )
    record = _format.code_result(
        execution, code="1+1", language=None, sandbox_id="sbx", timeout=5.0
    )
    assert record.stdout == "a\nb\n"
    assert record.stderr == "warn\n"
    assert record.results[0] == {"data": {"text/plain": "2"}, "is_main_result": True}
    assert record.results[1]["data"]["image/png"] == PNG_1PX
    assert record.results[1]["data"]["application/x-custom"] == {"a": 1}
    assert record.error == {"name": "ValueError", "value": "bad", "traceback": "tb"}
    assert record.execution_count == 3
    assert record.text == "2"
    json.dumps(record.to_dict())


def test_render_code_orders_sections_and_labels_stderr() -> None:
    record = _cell(
        stdout="hello\n",
        stderr="careful\n",
        results=[{"data": {"text/plain": "42"}, "is_main_result": True}],
        execution_count=7,
        notice="Sandbox restarted.",
    )
    text = _format.render_code(record, include_images=True).text
    assert text.splitlines() == ["Sandbox restarted.", "hello", "[stderr]", "careful", "Out[7]: 42"]


def test_render_code_error_has_name_value_and_trimmed_colourless_traceback() -> None:
    traceback = "\x1b[31m" + "\n".join(f"frame {i}" for i in range(100)) + "\nKeyError: 'k'\x1b[0m"
    record = _cell(error={"name": "KeyError", "value": "'k'", "traceback": traceback})
    text = _format.render_code(record, include_images=False).text
    assert "\x1b" not in text
    assert text.endswith("KeyError: 'k'")
    assert "earlier traceback lines omitted" in text
    assert len(text.splitlines()) <= _format.TRACEBACK_LINES + 1


def test_render_code_error_without_traceback_still_names_error() -> None:
    text = _format.render_code(
        _cell(error={"name": "NameError", "value": "x", "traceback": ""}), include_images=False
    ).text
    assert text == "NameError: x"


def test_render_code_timeout_and_empty_output() -> None:
    assert _format.render_code(_cell(), include_images=True).text == "Code ran with no output."
    text = _format.render_code(_cell(timed_out=True, timeout=2.0), include_images=True).text
    assert "timed out after 2 seconds" in text
    assert "interrupted" in text


def test_image_blocks_are_standard_blocks_and_capped() -> None:
    results = [{"data": {"image/png": PNG_1PX, "text/plain": "<Figure>"}, "is_main_result": False}]
    rendered = _format.render_code(_cell(results=results), include_images=True)
    assert rendered.images == [{"type": "image", "base64": PNG_1PX, "mime_type": "image/png"}]
    assert "[image output, shown below]" in rendered.text

    blocks, notes = _format.image_blocks(results * 3, max_images=2)
    assert len(blocks) == 2
    assert notes == ["An image/png image was left out: at most 2 are shown."]

    blocks, notes = _format.image_blocks(results, max_bytes=10)
    assert blocks == []
    assert "over the" in notes[0]


def test_images_stay_out_of_content_when_disabled() -> None:
    results = [{"data": {"image/png": PNG_1PX}, "is_main_result": False}]
    rendered = _format.render_code(_cell(results=results), include_images=False)
    assert rendered.images == []
    assert "kept in the artifact" in rendered.text


def test_content_is_text_or_text_then_images() -> None:
    assert _format.content("hi", []) == "hi"
    block = {"type": "image", "base64": PNG_1PX, "mime_type": "image/png"}
    assert _format.content("hi", [block]) == [{"type": "text", "text": "hi"}, block]


def test_truncate_keeps_head_and_tail_and_says_where_the_rest_is() -> None:
    text = "".join(f"line {i:05d}\n" for i in range(10_000))
    out = _format.truncate(text, 2_000, note=_format.saved_note("/tmp/out.txt"))
    assert len(out) < 2_300
    assert out.startswith("line 00000\n")
    assert out.rstrip().endswith("line 09999")
    assert "characters omitted" in out
    assert "/tmp/out.txt" in out
    # No half lines around the cut.
    for line in out.splitlines():
        assert line.startswith(("line ", "[..."))
    assert _format.truncate("short", 2_000, note="x") == "short"


def test_render_command_reports_exit_code_timeout_and_background() -> None:
    done = CommandResult(command="ls", stdout="a\n", stderr="oops\n", exit_code=2)
    assert _format.render_command(done).splitlines() == ["a", "[stderr]", "oops", "Exit code: 2"]
    late = CommandResult(command="sleep", stdout="p\n", timed_out=True, timeout=1.0)
    assert _format.render_command(late).endswith("timed out after 1 second and was killed.")
    bg = CommandResult(command="serve", pid=12, log_path="/tmp/x.log")
    text = _format.render_command(bg)
    assert "pid 12" in text
    assert "/tmp/x.log" in text


def test_artifact_is_json_serialisable_and_flags_truncation() -> None:
    record = _cell(results=[{"data": {"image/png": PNG_1PX}, "is_main_result": False}])
    artifact = _format.artifact(record, truncated=True, full_output_path="/tmp/f.txt")
    assert artifact["kind"] == "code"
    assert artifact["truncated"] is True
    assert artifact["full_output_path"] == "/tmp/f.txt"
    assert json.loads(json.dumps(artifact))["results"][0]["data"]["image/png"] == PNG_1PX
    command = _format.artifact(CommandResult(command="ls", exit_code=0, sandbox_id="s"))
    assert command["kind"] == "command"
    assert command["exit_code"] == 0
    assert command["sandbox_id"] == "s"


def test_saved_note_never_calls_a_partial_capture_the_full_output() -> None:
    assert "full output is saved" in _format.saved_note("/tmp/out.txt")
    partial = _format.saved_note("/tmp/out.txt", not_kept=5_000)
    assert "full output" not in partial
    assert "5000 characters in the middle were not kept" in partial
    assert "/tmp/out.txt" in partial
    assert "redirect the output to a file" in _format.saved_note(None, not_kept=1)
