"""A small PNG per service: deploys per day (failures stacked in red) and time-to-restore points below.

Why a PNG writer of our own over ``zlib``: a plotting library (matplotlib, Pillow) would stay
in the executor's memory for the rest of its life for one small picture a week; this writes
the format directly (PNG spec: signature, IHDR, one IDAT of filtered scanlines, IEND, each
chunk with its CRC-32) from a ``bytearray``, so a chart costs its own pixels and nothing
after it is sent. docs/benchmarks.md has the resident memory before and after.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from bot.watch.insights import Figures

RGB = tuple[int, int, int]
BACKGROUND: RGB = (255, 255, 255)
AXIS: RGB = (170, 170, 170)
DEPLOY: RGB = (46, 160, 67)
FAILURE: RGB = (207, 34, 46)
RESTORE: RGB = (191, 135, 0)

BAR_WIDTH = 8
BAR_GAP = 4
PAD = 8
BARS_HEIGHT = 96
RESTORE_HEIGHT = 36
POINT = 2
"""A restore point is a (2·POINT+1)-pixel square."""


@dataclass(frozen=True)
class ChartLayout:
    """Where things are, so tests can read the picture back: bar ``i`` spans x in [bar_left(i), bar_left(i) + BAR_WIDTH)."""

    days: int

    @property
    def width(self) -> int:
        return 2 * PAD + self.days * (BAR_WIDTH + BAR_GAP) - BAR_GAP

    @property
    def height(self) -> int:
        return 3 * PAD + BARS_HEIGHT + RESTORE_HEIGHT

    @property
    def baseline(self) -> int:
        """The axis row under the bars; bars stand on the row above it."""
        return PAD + BARS_HEIGHT

    @property
    def restore_top(self) -> int:
        return self.baseline + 2 * PAD

    def bar_left(self, day: int) -> int:
        return PAD + day * (BAR_WIDTH + BAR_GAP)


def deploys_chart(figures: Figures) -> bytes:
    """The PNG of one target's (or service's) window: a bar per day with deploys or failures, a point per restore."""
    layout = ChartLayout(max(1, figures.days))
    canvas = Canvas(layout.width, layout.height)
    canvas.fill(PAD, layout.baseline, layout.width - 2 * PAD, 1, AXIS)
    tallest = max((ok + bad for ok, bad in zip(figures.daily_deploys, figures.daily_failures, strict=True)), default=0)
    for day, (ok, bad) in enumerate(zip(figures.daily_deploys, figures.daily_failures, strict=True)):
        if ok + bad == 0:
            continue
        left = layout.bar_left(day)
        ok_height = _scaled(ok, tallest, BARS_HEIGHT)
        bad_height = max(1, _scaled(ok + bad, tallest, BARS_HEIGHT) - ok_height) if bad else 0
        canvas.fill(left, layout.baseline - ok_height, BAR_WIDTH, ok_height, DEPLOY)
        canvas.fill(left, layout.baseline - ok_height - bad_height, BAR_WIDTH, bad_height, FAILURE)
    canvas.fill(PAD, layout.restore_top + RESTORE_HEIGHT, layout.width - 2 * PAD, 1, AXIS)
    restored = [(day, item.seconds) for day, item in zip(figures.restore_days, figures.restores, strict=True) if item.seconds is not None]
    longest = max((seconds for _, seconds in restored), default=0.0)
    for day, seconds in restored:
        x = layout.bar_left(day) + BAR_WIDTH // 2
        y = layout.restore_top + RESTORE_HEIGHT - 1 - POINT - _scaled(seconds, longest, RESTORE_HEIGHT - 2 * POINT - 1)
        canvas.fill(x - POINT, y - POINT, 2 * POINT + 1, 2 * POINT + 1, RESTORE)
    return canvas.png()


class Canvas:
    """An RGB picture in a ``bytearray``; writes itself as a PNG."""

    def __init__(self, width: int, height: int, background: RGB = BACKGROUND) -> None:
        self.width = width
        self.height = height
        self.pixels = bytearray(bytes(background) * (width * height))

    def fill(self, left: int, top: int, width: int, height: int, color: RGB) -> None:
        """Paint a rectangle, clipped to the canvas."""
        x0, x1 = max(0, left), min(self.width, left + width)
        y0, y1 = max(0, top), min(self.height, top + height)
        if x0 >= x1:
            return
        row = bytes(color) * (x1 - x0)
        for y in range(y0, y1):
            start = (y * self.width + x0) * 3
            self.pixels[start : start + len(row)] = row

    def png(self) -> bytes:
        """The picture as PNG bytes: 8-bit truecolour, no interlace, filter 0 on every scanline."""
        stride = self.width * 3
        raw = b"".join(b"\x00" + bytes(self.pixels[y * stride : (y + 1) * stride]) for y in range(self.height))
        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b"")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _scaled(value: float, top: float, height: int) -> int:
    if top <= 0 or value <= 0:
        return 0
    return max(1, round(value / top * height))
