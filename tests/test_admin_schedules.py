"""The schedules admin: the list in words, and pause, resume and run-now for those who may
change schedules (and a visible refusal for those who may not)."""

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from django_conductor import schedule
from django_conductor.models import Execution, Schedule

pytestmark = pytest.mark.django_db

LIST = reverse("admin:django_conductor_schedule_changelist")


def staff(client, *codenames):
    user = User.objects.create_user("staff", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client.force_login(user)


def act(client, action, *schedules):
    ids = [str(s.pk) for s in schedules]
    return client.post(LIST, {"action": action, "_selected_action": ids}, follow=True)


def future_ticks(name):
    return Execution.objects.filter(event_name=name, status="pending")


@pytest.fixture
def weekday():
    schedule("tick", "weekday-morning", "0 9 * * 1-5", payload={"report": "sales"})
    return Schedule.objects.get(name="weekday-morning")


def test_the_list_shows_the_expression_in_words_with_next_and_last_run(admin_client, weekday):
    page = admin_client.get(LIST).content.decode()
    assert "At 09:00 on Monday through Friday" in page
    assert "<code>0 9 * * 1-5</code>" in page
    assert "weekday-morning" in page and "Made by schedule()" in page
    assert 'title="' in page  # the next run, relative with the exact time on hover
    detail = admin_client.get(reverse("admin:django_conductor_schedule_change", args=[weekday.pk]))
    assert detail.status_code == 200
    assert "sales" in detail.content.decode()


def test_pause_drops_the_future_tick_and_resume_brings_the_next_one(admin_client, weekday):
    (tick,) = future_ticks("weekday-morning")
    page = act(admin_client, "pause_selected", weekday).content.decode()
    assert "Paused: weekday-morning." in page
    weekday.refresh_from_db()
    assert (weekday.paused, weekday.next_run_at) == (True, None)
    assert not future_ticks("weekday-morning").exists()
    assert "already paused" in act(admin_client, "pause_selected", weekday).content.decode()

    act(admin_client, "resume_selected", weekday)
    weekday.refresh_from_db()
    (again,) = future_ticks("weekday-morning")
    assert not weekday.paused and again.scheduled_at == weekday.next_run_at
    assert again.scheduled_at == tick.scheduled_at  # the same next tick, created anew
    messages = set(LogEntry.objects.values_list("change_message", flat=True))
    assert messages == {"Paused from the admin", "Resumed from the admin"}


def test_run_now_starts_one_execution_besides_the_ticks(admin_client, weekday):
    act(admin_client, "run_now_selected", weekday)
    now = Execution.objects.filter(event_name="weekday-morning").exclude(
        scheduled_at=weekday.next_run_at
    )
    (started,) = now
    assert started.payload == {"report": "sales"} and started.run_at <= weekday.next_run_at
    assert future_ticks("weekday-morning").count() == 2  # the extra run and the next tick


def test_a_viewer_sees_the_schedules_but_cannot_pause_them(client, weekday):
    staff(client, "view_schedule")
    assert "weekday-morning" in client.get(LIST).content.decode()
    act(client, "pause_selected", weekday)
    weekday.refresh_from_db()
    assert not weekday.paused
    assert future_ticks("weekday-morning").count() == 1


def test_a_user_with_change_permission_may_pause(client, weekday):
    staff(client, "view_schedule", "change_schedule")
    act(client, "pause_selected", weekday)
    weekday.refresh_from_db()
    assert weekday.paused
