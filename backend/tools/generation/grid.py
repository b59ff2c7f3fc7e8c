"""The X/Y grid image: the cells in rows (Y) and columns (X), the X labels above, the Y labels on the left and the
two axes' names in the corner, drawn with PIL. Torch-free."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

BACKGROUND = (255, 255, 255)
INK = (0, 0, 0)
PAD = 8


@dataclass(frozen=True)
class GridLayout:
    cell: tuple[int, int]  # width, height of the largest cell
    left: int  # the label column's width
    top: int  # the label row's height
    columns: int
    rows: int

    @property
    def size(self) -> tuple[int, int]:
        return self.left + self.columns * self.cell[0], self.top + self.rows * self.cell[1]

    def origin(self, column: int, row: int) -> tuple[int, int]:
        return self.left + column * self.cell[0], self.top + row * self.cell[1]


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType
        return ImageFont.load_default()


def font_size(cell_width: int) -> int:
    return max(12, min(32, cell_width // 14))


def wrap(label: str, width_px: int, size: int) -> list[str]:
    """A label cut into lines that fit `width_px` (roughly: half the font size per character), at most 3 lines."""
    chars = max(4, int(width_px / (size * 0.55)))
    lines = textwrap.wrap(label, chars, break_long_words=True) or [""]
    if len(lines) > 3:
        lines = [*lines[:2], lines[2][: max(1, chars - 1)] + "…"]
    return lines


def layout(cells: Sequence[Sequence[Image.Image]], x_labels: Sequence[str], y_labels: Sequence[str]) -> GridLayout:
    width = max(image.width for row in cells for image in row)
    height = max(image.height for row in cells for image in row)
    size = font_size(width)
    line = int(size * 1.3)
    top_lines = max(len(wrap(label, width - 2 * PAD, size)) for label in x_labels)
    left = max(min(width, 320), 120)
    return GridLayout((width, height), left, top_lines * line + 2 * PAD + line, len(x_labels), len(y_labels))


def draw_grid(cells: Sequence[Sequence[Image.Image]], x_labels: Sequence[str], y_labels: Sequence[str],
              x_name: str, y_name: str) -> Image.Image:
    """`cells[row][column]`, each row as long as `x_labels`, as many rows as `y_labels`."""
    grid = layout(cells, x_labels, y_labels)
    image = Image.new("RGB", grid.size, BACKGROUND)
    draw = ImageDraw.Draw(image)
    size = font_size(grid.cell[0])
    font, line = _font(size), int(size * 1.3)
    draw.text((PAD, PAD), f"Y: {y_name} / X: {x_name}", fill=INK, font=font)
    for column, label in enumerate(x_labels):
        x0, _ = grid.origin(column, 0)
        for number, text in enumerate(wrap(label, grid.cell[0] - 2 * PAD, size)):
            draw.text((x0 + grid.cell[0] // 2, PAD + line * (number + 1)), text, fill=INK, font=font, anchor="ma")
    for row, label in enumerate(y_labels):
        _, y0 = grid.origin(0, row)
        lines = wrap(label, grid.left - 2 * PAD, size)
        start = y0 + grid.cell[1] // 2 - len(lines) * line // 2
        for number, text in enumerate(lines):
            draw.text((PAD, start + number * line), text, fill=INK, font=font)
    for row, images in enumerate(cells):
        for column, cell in enumerate(images):
            image.paste(cell.convert("RGB"), grid.origin(column, row))
    return image
