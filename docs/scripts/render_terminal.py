"""Render a terminal capture with ANSI colours (``tmux capture-pane -e -J``) to a PNG.

The demo's picture in the docs was made this way:

    tmux new-session -d -s demo -x 118 -y 50 \
        "TERM=xterm-256color .venv/bin/langchain-e2b demo --output-dir /tmp/demo; sleep 600"
    # once it printed "Notebook: ..."
    tmux capture-pane -e -J -p -t demo -S - > /tmp/demo-ansi.txt
    .venv/bin/python docs/scripts/render_terminal.py /tmp/demo-ansi.txt docs/img/demo-terminal.png
    cp /tmp/demo/revenue_by_month.png docs/img/demo-chart.png

Only what the demo prints is understood: SGR reset, bold, dim and the 16 basic colours.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
BACKGROUND = (30, 30, 36)
FOREGROUND = (220, 220, 220)
# A dark terminal theme's basic colours (30-37) and their bright forms (90-97).
COLOURS = [
    (60, 60, 60), (232, 96, 96), (120, 200, 110), (230, 200, 100),
    (110, 160, 240), (200, 130, 230), (100, 200, 210), (220, 220, 220),
]  # fmt: skip
SGR = re.compile(r"\x1b\[([0-9;]*)m")


@dataclass(frozen=True)
class Style:
    """The pen a run of text is drawn with."""

    colour: tuple[int, int, int] = FOREGROUND
    bold: bool = False
    dim: bool = False


def apply(style: Style, codes: str) -> Style:
    """The style after one SGR sequence."""
    for part in (codes or "0").split(";"):
        code = int(part or 0)
        if code == 0:
            style = Style()
        elif code == 1:
            style = replace(style, bold=True)
        elif code == 2:
            style = replace(style, dim=True)
        elif code == 22:
            style = replace(style, bold=False, dim=False)
        elif 30 <= code <= 37:
            style = replace(style, colour=COLOURS[code - 30])
        elif 90 <= code <= 97:
            style = replace(style, colour=COLOURS[code - 90])
        elif code == 39:
            style = replace(style, colour=FOREGROUND)
    return style


def runs(text: str, width: int) -> list[list[tuple[str, Style]]]:
    """Split the capture into screen lines of at most ``width`` cells, each a list of runs."""
    lines: list[list[tuple[str, Style]]] = []
    style = Style()
    for raw in text.rstrip("\n").split("\n"):
        line: list[tuple[str, Style]] = []
        used = 0
        position = 0
        for match in [*SGR.finditer(raw), None]:
            end = match.start() if match else len(raw)
            chunk = raw[position:end]
            while chunk:
                room = width - used
                piece, chunk = chunk[:room], chunk[room:]
                line.append((piece, style))
                used += len(piece)
                if used == width and chunk:
                    lines.append(line)
                    line, used = [], 0
            if match:
                style = apply(style, match.group(1))
                position = match.end()
        lines.append(line)
    return lines


def render(text: str, width: int, size: int) -> Image.Image:
    """Draw the capture as a terminal window."""
    regular = ImageFont.truetype(str(FONT_DIR / "DejaVuSansMono.ttf"), size)
    bold = ImageFont.truetype(str(FONT_DIR / "DejaVuSansMono-Bold.ttf"), size)
    cell = regular.getlength("M")
    height = int(size * 1.35)
    lines = runs(text, width)
    pad, bar = 16, 28
    image = Image.new(
        "RGB", (int(cell * width) + 2 * pad, len(lines) * height + 2 * pad + bar), BACKGROUND
    )
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, image.width, bar), fill=(50, 50, 58))
    for index, colour in enumerate(((237, 106, 94), (245, 191, 79), (98, 197, 84))):
        x = pad + index * 20
        draw.ellipse((x, 9, x + 11, 20), fill=colour)
    for row, line in enumerate(lines):
        x = float(pad)
        y = bar + pad + row * height
        for piece, style in line:
            colour = style.colour
            if style.dim:
                colour = tuple(channel * 6 // 10 for channel in colour)  # type: ignore[assignment]
            draw.text((x, y), piece, font=bold if style.bold else regular, fill=colour)
            x += cell * len(piece)
    return image


def main() -> None:
    """Read the capture, write the PNG."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("capture")
    parser.add_argument("output")
    parser.add_argument("--width", type=int, default=110, help="columns (default 110)")
    parser.add_argument("--size", type=int, default=13, help="font size in pixels (default 13)")
    args = parser.parse_args()
    text = Path(args.capture).read_text(encoding="utf-8")
    render(text, args.width, args.size).save(args.output, optimize=True)


if __name__ == "__main__":
    main()
