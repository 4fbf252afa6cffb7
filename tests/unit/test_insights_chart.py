"""The insights chart is a valid PNG of the expected size, with a bar per active day and failures in red."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from PIL import Image

from bot.watch.insights import Figures, Restore
from bot.watch.insights_chart import BAR_WIDTH, DEPLOY, FAILURE, RESTORE, ChartLayout, deploys_chart
from bot.watch.insights_render import human_duration, sparkline, trend

START = datetime(2026, 3, 9, tzinfo=UTC)


def figures(deploys: list[int], failures: list[int], restores: tuple[tuple[int, float | None], ...] = ()) -> Figures:
    return Figures(
        days=len(deploys),
        deploys=sum(deploys),
        changes=sum(deploys) + sum(failures),
        failed_changes=sum(failures),
        daily_deploys=tuple(deploys),
        daily_failures=tuple(failures),
        restores=tuple(Restore(START + timedelta(days=day), seconds, "incident") for day, seconds in restores),
        restore_days=tuple(day for day, _ in restores),
    )


def picture(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    image.load()  # checks every chunk's CRC and the zlib stream
    return image.convert("RGB")


def bars_on_row(image: Image.Image, y: int, colors: set[tuple[int, int, int]]) -> int:
    """Runs of bar-coloured pixels along row ``y``: one per bar."""
    runs, inside = 0, False
    for x in range(image.width):
        hit = image.getpixel((x, y)) in colors
        runs += hit and not inside
        inside = hit
    return runs


def test_the_chart_is_a_png_of_the_expected_size_with_one_bar_per_active_day() -> None:
    data = figures([0, 2, 0, 1, 3, 0, 0], [0, 0, 1, 1, 0, 0, 0], restores=((2, 1_500.0), (3, 120.0), (5, None)))

    image = picture(deploys_chart(data))

    layout = ChartLayout(7)
    assert (image.width, image.height) == (layout.width, layout.height)
    just_above_axis = layout.baseline - 1
    assert bars_on_row(image, just_above_axis, {DEPLOY, FAILURE}) == 4  # days 1, 2, 3, 4
    reds = [
        day
        for day in range(7)
        if any(image.getpixel((layout.bar_left(day) + BAR_WIDTH // 2, y)) == FAILURE for y in range(layout.baseline))
    ]
    assert reds == [2, 3]
    points = {x for x in range(image.width) for y in range(layout.restore_top, layout.height) if image.getpixel((x, y)) == RESTORE}
    assert len(points) == 2 * 5  # two restored outages (the open one has no time yet), 5 pixels wide each


def test_a_28_day_window_without_changes_is_an_empty_chart_not_an_error() -> None:
    image = picture(deploys_chart(figures([0] * 28, [0] * 28)))

    assert image.width == ChartLayout(28).width
    assert bars_on_row(image, ChartLayout(28).baseline - 1, {DEPLOY, FAILURE}) == 0


def test_sparklines_trends_and_durations_read_as_people_expect() -> None:
    assert sparkline([0, 1, 2, 8]) == "·▁▂█"
    assert sparkline([0, 0]) == "··"
    assert trend(5, 4) == "▲ 25 %"
    assert trend(3, 4) == "▼ 25 %"
    assert trend(2, 0) == "new"
    assert trend(None, 4) == "—"
    assert (human_duration(45), human_duration(600), human_duration(5_400), human_duration(200_000)) == ("45 s", "10 min", "1.5 h", "2.3 d")


def test_a_message_about_many_targets_stays_inside_one_slack_section() -> None:
    from bot.watch.insights import InsightsReport, TargetInsights, Window
    from bot.watch.insights_render import MAX_TARGETS_LISTED, insights_message

    busy = figures([3] * 28, [1] * 28)
    window = Window(START, START + timedelta(days=28), 28, "UTC")
    targets = tuple(TargetInsights(f"service-{index:03d}", "production", busy, busy) for index in range(200))
    report = InsightsReport(window, window, TargetInsights("*", "*", busy, busy), targets)

    message = insights_message(report)

    assert all(len(section) <= 3_000 for section in message.sections)
    assert message.sections[-1].count("\n`service-") == MAX_TARGETS_LISTED
    assert message.sections[-1].endswith("…and 185 more (`opsbot insights` lists every target)")
