"""Charts and images from Python cells, through the real SDK, shaped as E2B's kernels shape them."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from typing import Any

import pytest
from e2b_code_interpreter import Sandbox
from e2b_code_interpreter.charts import BoxAndWhiskerChart, ChartType

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

# The figure of E2B's own box-and-whisker test (its template's data-extraction package).
BOX_PLOT = """\
import matplotlib.pyplot as plt
data = {
    "Class A": [85, 90, 78, 92, 88],
    "Class B": [95, 89, 76, 91, 84, 87],
    "Class C": [75, 82, 88, 79, 86],
}
fig, ax = plt.subplots(figsize=(10, 6))
ax.boxplot(data.values(), tick_labels=data.keys(), patch_artist=True)
ax.set_title("Exam Scores Distribution")
ax.set_xlabel("Class")
ax.set_ylabel("Score")
"""


@pytest.fixture(scope="module")
def sandbox(e2b_connection: dict[str, Any]) -> Iterator[Sandbox]:
    sbx = Sandbox.create(**e2b_connection)
    try:
        yield sbx
    finally:
        sbx.kill()


def _expected_box_chart() -> dict[str, Any]:
    """The chart E2B's e2b-charts package makes of the same figure, here on the host."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from e2b_charts import chart_figure_to_dict

    scope: dict[str, Any] = {}
    exec(BOX_PLOT, scope)
    try:
        return chart_figure_to_dict(scope["fig"])
    finally:
        plt.close(scope["fig"])


def test_box_and_whisker_chart(sandbox: Sandbox) -> None:
    execution = sandbox.run_code(BOX_PLOT + "plt.show()")
    assert execution.error is None
    (figure,) = [r for r in execution.results if r.png]
    chart = figure.chart
    assert isinstance(chart, BoxAndWhiskerChart)
    assert chart.type == ChartType.BOX_AND_WHISKER
    assert chart.title == "Exam Scores Distribution"
    assert (chart.x_label, chart.y_label) == ("Class", "Score")
    expected = _expected_box_chart()
    assert expected["type"] == "box_and_whisker"
    got = [
        (e.label, e.min, e.first_quartile, e.median, e.third_quartile, e.max, list(e.outliers))
        for e in chart.elements
    ]
    want = [
        (
            e["label"],
            e["min"],
            e["first_quartile"],
            e["median"],
            e["third_quartile"],
            e["max"],
            list(e["outliers"]),
        )
        for e in expected["elements"]
    ]
    assert got == want
    assert [e[0] for e in got] == ["Class A", "Class B", "Class C"]


def _png_size(data: str) -> tuple[int, int]:
    raw = base64.b64decode(data)
    assert raw.startswith(b"\x89PNG\r\n\x1a\n")
    # The IHDR chunk comes first: width and height, big-endian, after its length and type.
    return int.from_bytes(raw[16:20], "big"), int.from_bytes(raw[20:24], "big")


def test_pil_image_saved_to_a_file_is_an_image_result(sandbox: Sandbox) -> None:
    fresh = sandbox.create_code_context()
    try:
        loaded = sandbox.run_code("import sys\n'PIL.Image' in sys.modules", context=fresh)
        assert loaded.text == "False", "PIL must not be imported before a cell asks for it"
    finally:
        sandbox.remove_code_context(fresh)
    execution = sandbox.run_code(
        "from PIL import Image\n"
        "img = Image.new('RGB', (24, 12), 'red')\n"
        "img.save('red.png')\n"
        "print('saved')"
    )
    assert execution.error is None
    assert execution.logs.stdout == ["saved\n"]
    (image,) = execution.results
    assert image.png is not None
    assert _png_size(image.png) == (24, 12)
    assert not image.is_main_result
    # The file is written too, as the cell asked.
    stored = sandbox.files.read("/home/user/red.png", format="bytes")
    assert _png_size(base64.b64encode(bytes(stored)).decode()) == (24, 12)


def test_pil_show_displays_and_in_memory_saves_do_not(sandbox: Sandbox) -> None:
    shown = sandbox.run_code(
        "from PIL import Image\nimport io\n"
        "square = Image.new('L', (8, 8), 128)\n"
        "square.save(io.BytesIO(), format='PNG')\n"
        "square.show()"
    )
    assert shown.error is None
    pngs = [r.png for r in shown.results if r.png]
    assert len(pngs) == 1
    assert _png_size(pngs[0]) == (8, 8)


def test_matplotlib_savefig_does_not_add_a_second_chart(sandbox: Sandbox) -> None:
    # matplotlib writes PNGs through PIL's Image.save: the saved figure must not come back as
    # an extra image beside the one the figure itself displays.
    execution = sandbox.run_code(
        "import matplotlib.pyplot as plt\n"
        "fig, ax = plt.subplots()\n"
        "ax.plot([1, 2, 3])\n"
        "fig.savefig('line.png')\n"
        "plt.show()"
    )
    assert execution.error is None
    assert len([r for r in execution.results if r.png]) == 1
    assert sandbox.files.exists("/home/user/line.png")


def test_png_helper_reads_a_real_png() -> None:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (3, 5)).save(buffer, format="PNG")
    assert _png_size(base64.b64encode(buffer.getvalue()).decode()) == (3, 5)
