"""When App Homes are published: a burst is one publish per person, Retry-After holds everyone back."""

from __future__ import annotations

from bot.requests.home_schedule import PublishSchedule


def test_a_burst_of_changes_for_one_person_is_one_publish_after_the_debounce() -> None:
    schedule = PublishSchedule(debounce=0.5, min_interval=1.0)

    for moment in (0.0, 0.1, 0.2, 0.3):
        schedule.changed("U1", moment)

    assert schedule.due(0.4) == []
    assert schedule.due(0.5) == ["U1"]
    assert schedule.due(0.6) == []


def test_a_steady_stream_of_changes_does_not_postpone_the_home_forever() -> None:
    schedule = PublishSchedule(debounce=0.5, min_interval=1.0)
    schedule.changed("U1", 0.0)

    schedule.changed("U1", 0.45)

    assert schedule.next_at() == 0.5


def test_a_person_is_published_at_most_once_per_min_interval() -> None:
    schedule = PublishSchedule(debounce=0.1, min_interval=2.0)
    schedule.published("U1", 10.0)

    schedule.changed("U1", 10.5)

    assert schedule.next_at() == 12.0
    assert schedule.due(11.9) == [] and schedule.due(12.0) == ["U1"]


def test_opening_the_home_is_published_at_once_unless_it_was_just_published() -> None:
    schedule = PublishSchedule(debounce=0.5, min_interval=1.0)

    schedule.changed("U1", 3.0, after=0.0)

    assert schedule.due(3.0) == ["U1"]


def test_ratelimited_holds_every_home_back_until_retry_after_and_retries_the_refused_one() -> None:
    schedule = PublishSchedule(debounce=0.0, min_interval=0.0)
    schedule.changed("U2", 0.0)

    schedule.rate_limited("U1", 1.0, retry_after=30.0)
    schedule.changed("U3", 2.0)

    assert schedule.due(30.9) == []
    assert sorted(schedule.due(31.0)) == ["U1", "U2", "U3"]


def test_people_are_scheduled_independently() -> None:
    schedule = PublishSchedule(debounce=0.5, min_interval=1.0)

    schedule.changed("U1", 0.0)
    schedule.changed("U2", 0.3)

    assert schedule.due(0.5) == ["U1"]
    assert schedule.due(0.8) == ["U2"]
    assert schedule.waiting() == 0
