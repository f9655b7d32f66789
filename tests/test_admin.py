"""The admin: lists, filters, search, one execution's page with its timeline, the failure
pages, retry / cancel / run-now, the permission rules and the overview page."""

import re
from datetime import timedelta

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from django_conductor import run_now
from django_conductor.admin import overview
from django_conductor.admin.display import humanize_duration, relative, when
from django_conductor.models import Execution, FailedExecution, Step, WorkerHeartbeat
from django_conductor.store.base import READY_CHANNEL
from django_conductor.store.notify import connect_listener

pytestmark = pytest.mark.django_db


def url(name, *args):
    return reverse(f"admin:django_conductor_{name}", args=args)


LIST = "execution_changelist"
FAILURES = "failedexecution_changelist"


def html(response):
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def staff(client, *codenames):
    user = User.objects.create_user("staff", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    return user


def viewer(client):
    return staff(client, "view_execution", "view_failedexecution")


def listed_ids(page):
    return {int(i) for i in re.findall(r'name="_selected_action" value="(\d+)"', page)}


def ago(**kwargs):
    return timezone.now() - timedelta(**kwargs)


def later(**kwargs):
    return timezone.now() + timedelta(**kwargs)


@pytest.fixture
def failed(failed_execution_factory, step_factory):
    failure = failed_execution_factory(execution__error="ValueError: boom")
    step_factory(execution=failure.execution, name="charge", result={"id": "ch_1"})
    return failure


def post_action(client, action, ids, name=LIST, confirm=True, **extra):
    data = {"action": action, "_selected_action": ids, **extra}
    if confirm:
        data["post"] = "yes"
    return client.post(url(name), data, follow=True)


# -- the executions list ---------------------------------------------------------------


def test_execution_list_shows_a_coloured_badge_for_every_state(admin_client, execution_factory):
    execution_factory(status="pending")
    execution_factory(status="running", started_at=ago(seconds=5))
    execution_factory(status="sleeping", run_at=later(hours=2))
    execution_factory(status="waiting", run_at=None)
    execution_factory(status="completed", started_at=ago(seconds=3), finished_at=ago(seconds=1))
    execution_factory(status="failed")
    execution_factory(status="cancelled")
    page = html(admin_client.get(url(LIST)))
    for status in ("pending", "running", "completed", "failed", "cancelled"):
        assert f'class="cd-badge cd-{status}"' in page
        assert f">{status}</span>" in page
    assert re.search(
        r'class="cd-badge cd-sleeping" title="Sleeping, wakes [\d-]+ [\d:]+ UTC">', page
    )
    assert ">sleeping</span>" in page  # short in the list: the run at column says when
    assert 'class="cd-badge cd-waiting" title="Waiting on child">waiting on child<' in page


def test_a_running_execution_asked_to_cancel_shows_cancelling(admin_client, execution_factory):
    execution_factory(status="running", cancel_requested_at=timezone.now())
    assert ">cancelling</span>" in html(admin_client.get(url(LIST)))


def test_a_pending_execution_in_backoff_shows_when_it_retries(admin_client, execution_factory):
    backoff = execution_factory(status="pending", attempts=1, run_at=later(minutes=5))
    page = html(admin_client.get(url(LIST)))
    assert ">pending, backoff</span>" in page
    assert re.search(r">in [45] min( \d+ s)?</time>", page)  # the run at column
    detail = html(admin_client.get(url("execution_change", backoff.pk)))
    assert re.search(r"pending, backoff</span> retries in [45] min", detail)


def test_execution_list_shows_attempts_priority_times_and_duration(admin_client, execution_factory):
    execution_factory(
        task_name="send-invoice",
        queue="billing",
        status="completed",
        attempts=2,
        max_attempts=5,
        priority=7,
        started_at=ago(seconds=100),
        finished_at=ago(seconds=10),
    )
    page = html(admin_client.get(url(LIST)))
    for text in (
        "send-invoice",
        "billing",
        "2/5",
        '<td class="field-priority">7</td>',
        "1 min 30 s",
    ):
        assert text in page
    for column in ("created", "run at", "duration", "attempts", "priority"):
        assert f">{column.capitalize()}<" in page or f">{column}<" in page.lower()


def test_execution_list_never_counts_the_table(admin_client, execution_factory):
    execution_factory.create_batch(3)
    with CaptureQueriesContext(connection) as queries:
        html(admin_client.get(url(LIST)))
        html(admin_client.get(url(LIST), {"status__exact": "pending", "q": "echo"}))
    assert not [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]


def _queries(client, path, **params):
    with CaptureQueriesContext(connection) as queries:
        page = html(client.get(path, params))
    return len(queries.captured_queries), page


def _varied_rows(execution_factory, failed_execution_factory, count):
    parent = execution_factory(status="waiting")
    for n in range(count):
        execution_factory(
            parent=parent, parent_step=f"child-{n}", status=("pending", "completed")[n % 2]
        )
        failed_execution_factory()


def test_execution_list_query_count_does_not_grow_with_rows_shown(
    admin_client, execution_factory, failed_execution_factory
):
    _varied_rows(execution_factory, failed_execution_factory, 2)
    few, page = _queries(admin_client, url(LIST))
    assert len(listed_ids(page)) == 5
    _varied_rows(execution_factory, failed_execution_factory, 22)
    many, page = _queries(admin_client, url(LIST))
    assert len(listed_ids(page)) == 50
    assert many == few
    filtered, _ = _queries(admin_client, url(LIST), status__exact="failed", task="echo")
    assert filtered == few


def test_failure_list_query_count_does_not_grow_with_rows_shown(
    admin_client, failed_execution_factory
):
    failed_execution_factory.create_batch(5)
    few, page = _queries(admin_client, url(FAILURES))
    assert len(listed_ids(page)) == 5
    failed_execution_factory.create_batch(45)
    many, page = _queries(admin_client, url(FAILURES))
    assert len(listed_ids(page)) == 50
    assert many == few


def test_execution_list_pages_forward_and_back_without_a_total(admin_client, execution_factory):
    first = execution_factory.create_batch(101)[0]
    page = html(admin_client.get(url(LIST)))
    assert len(listed_ids(page)) == 100
    assert first.pk not in listed_ids(page)
    assert 'rel="next"' in page and 'rel="prev"' not in page
    assert "Executions 1&ndash;100" in page
    second = html(admin_client.get(url(LIST), {"p": 2}))
    assert listed_ids(second) == {first.pk}
    assert 'rel="prev"' in second and 'rel="next"' not in second
    assert "(page 2)" in second


def test_status_filter_shows_only_that_status(admin_client, execution_factory):
    done = execution_factory(status="completed")
    failed = execution_factory(status="failed")
    page = html(admin_client.get(url(LIST), {"status__exact": "failed"}))
    assert listed_ids(page) == {failed.pk}
    assert done.pk not in listed_ids(page)


def test_task_filter_offers_the_registered_tasks_and_filters(admin_client, execution_factory):
    doubled = execution_factory(task_name="double")
    execution_factory(task_name="echo")
    page = html(admin_client.get(url(LIST)))
    assert "?task=double" in page and "?task=echo" in page and "?task=reminder" in page
    assert listed_ids(html(admin_client.get(url(LIST), {"task": "double"}))) == {doubled.pk}
    # A task no longer in the code still works from the URL, and is offered while in use.
    old = execution_factory(task_name="renamed-long-ago")
    page = html(admin_client.get(url(LIST), {"task": "renamed-long-ago"}))
    assert listed_ids(page) == {old.pk} and "?task=renamed-long-ago" in page


def test_queue_filter_offers_task_and_worker_queues_and_filters(admin_client, execution_factory):
    WorkerHeartbeat.objects.create(worker_id="w1", host="box", pid=1, queues=["emails"])
    mail = execution_factory(queue="emails")
    execution_factory(queue="default")
    page = html(admin_client.get(url(LIST)))
    assert "?queue=emails" in page and "?queue=default" in page
    assert listed_ids(html(admin_client.get(url(LIST), {"queue": "emails"}))) == {mail.pk}
    # A queue nobody names in code or serves still works from the URL.
    odd = execution_factory(queue="odd-one")
    assert listed_ids(html(admin_client.get(url(LIST), {"queue": "odd-one"}))) == {odd.pk}


def test_date_filter_keeps_recent_executions(admin_client, execution_factory):
    old = execution_factory()
    Execution.objects.filter(pk=old.pk).update(created_at=ago(days=30))
    new = execution_factory()
    page = html(admin_client.get(url(LIST)))
    link = re.search(r'href="(\?created_at__gte=[^"]+)"[^>]*>Past 7 days', page)
    assert link, "the date filter offers 'Past 7 days'"
    filtered = html(admin_client.get(url(LIST) + link.group(1).replace("&amp;", "&")))
    assert listed_ids(filtered) == {new.pk}


def test_parent_filter_lists_the_children_of_one_execution(admin_client, execution_factory):
    parent = execution_factory(status="waiting")
    children = {execution_factory(parent=parent, parent_step=f"s{n}").pk for n in range(3)}
    execution_factory()
    page = html(admin_client.get(url(LIST), {"parent": parent.pk}))
    assert listed_ids(page) == children
    assert f"children of #{parent.pk}" in page


@pytest.mark.parametrize("term", ["{id}", "#{id}", " {id} "])
def test_search_finds_an_execution_by_id(admin_client, execution_factory, term):
    wanted, _other = execution_factory(), execution_factory()
    page = html(admin_client.get(url(LIST), {"q": term.format(id=wanted.pk)}))
    assert listed_ids(page) == {wanted.pk}


def test_search_finds_executions_of_a_registered_task_by_its_name(admin_client, execution_factory):
    wanted = execution_factory(task_name="double")
    execution_factory(task_name="double-later")
    page = html(admin_client.get(url(LIST), {"q": "double"}))
    assert listed_ids(page) == {wanted.pk}


def test_search_finds_executions_by_dedupe_key_or_its_start(admin_client, execution_factory):
    order_1 = execution_factory(dedupe_key="order-1")
    order_12 = execution_factory(dedupe_key="order-12")
    execution_factory(dedupe_key="refund-1")
    assert listed_ids(html(admin_client.get(url(LIST), {"q": "order-12"}))) == {order_12.pk}
    assert listed_ids(html(admin_client.get(url(LIST), {"q": "order-"}))) == {
        order_1.pk,
        order_12.pk,
    }


def test_search_for_unknown_words_finds_nothing(admin_client, execution_factory):
    execution_factory()
    page = html(admin_client.get(url(LIST), {"q": "no such thing"}))
    assert listed_ids(page) == set()
    assert "No executions" in page


# -- one execution -----------------------------------------------------------------------


def test_execution_page_shows_payload_and_result_as_formatted_json(admin_client, execution_factory):
    execution = execution_factory(
        status="completed", payload={"order": 42, "items": ["a"]}, result={"invoice": "INV-7"}
    )
    page = html(admin_client.get(url("execution_change", execution.pk)))
    assert '<pre class="cd-json">{\n  &quot;items&quot;: [\n    &quot;a&quot;\n  ],' in page
    assert "&quot;invoice&quot;: &quot;INV-7&quot;" in page


def test_execution_page_draws_steps_in_order_on_a_timeline_with_gaps(
    admin_client, execution_factory, step_factory
):
    start = ago(hours=2)
    execution = execution_factory(status="waiting", started_at=start)
    Execution.objects.filter(pk=execution.pk).update(created_at=start - timedelta(seconds=30))
    child = execution_factory(parent=execution, parent_step="make-invoice")
    step_factory(
        execution=execution,
        name="charge",
        started_at=start,
        finished_at=start + timedelta(seconds=2),
        result={"id": "ch_1"},
    )
    step_factory(
        execution=execution,
        name="wait-a-bit",
        kind="sleep",
        result=None,
        started_at=start + timedelta(seconds=3),
        wake_at=start + timedelta(hours=1),
    )
    step_factory(
        execution=execution,
        name="make-invoice",
        kind="invoke",
        result=None,
        child=child,
        started_at=start + timedelta(hours=1, seconds=1),
    )
    page = html(admin_client.get(url("execution_change", execution.pk)))
    assert page.index(">charge<") < page.index(">wait-a-bit<") < page.index(">make-invoice<")
    assert 'class="cd-work"' in page  # the step's bar
    assert 'class="cd-sleep"' in page and "slept 59 min 57 s" in page  # the sleep as a hatched gap
    assert re.search(r"woke <time [^>]+>(59 min|1 h) ago</time>", page)  # over, so in the past
    assert 'class="cd-wait cd-open"' in page and f"waiting on child #{child.pk}" in page
    assert 'class="cd-queued"' in page and "queued 30 s" in page
    assert "&quot;id&quot;: &quot;ch_1&quot;" in page  # the step's result
    bars = re.findall(r'<rect x="([\d.]+)%" y="3" width="([\d.]+)%"', page)
    lefts = [float(left) for left, _ in bars]
    assert lefts == sorted(lefts) and lefts[-1] > 40  # the child wait starts after the sleep


def test_execution_page_query_count_does_not_grow_with_steps(
    admin_client, execution_factory, step_factory
):
    execution = execution_factory(status="running", lease_owner="w1")
    step_factory.create_batch(3, execution=execution)
    few, _ = _queries(admin_client, url("execution_change", execution.pk))
    step_factory.create_batch(30, execution=execution, kind="invoke", child=execution_factory())
    many, page = _queries(admin_client, url("execution_change", execution.pk))
    assert many == few
    assert page.count('class="cd-track"') == 34  # the queued row and 33 steps


def test_execution_page_links_parent_and_children(admin_client, execution_factory):
    parent = execution_factory(status="waiting")
    child = execution_factory(parent=parent, parent_step="make-invoice", task_name="invoice")
    parent_page = html(admin_client.get(url("execution_change", parent.pk)))
    assert f'href="{url("execution_change", child.pk)}">#{child.pk}</a>' in parent_page
    assert "make-invoice" in parent_page
    child_page = html(admin_client.get(url("execution_change", child.pk)))
    assert f'href="{url("execution_change", parent.pk)}">execution #{parent.pk}</a>' in child_page


def test_execution_page_shows_the_worker_holding_it_and_its_lease(admin_client, execution_factory):
    WorkerHeartbeat.objects.create(worker_id="box-7-abc", host="box", pid=7, queues=[])
    running = execution_factory(
        status="running", lease_owner="box-7-abc", lease_expires_at=later(seconds=20)
    )
    page = html(admin_client.get(url("execution_change", running.pk)))
    assert "box-7-abc" in page and "host box, pid 7, last seen" in page
    assert ">expired<" not in page
    lost = execution_factory(
        status="running", lease_owner="gone-1", lease_expires_at=ago(seconds=5)
    )
    page = html(admin_client.get(url("execution_change", lost.pk)))
    assert ">expired<" in page and "it has stopped or died" in page


def test_execution_page_shows_its_error_and_traceback(admin_client, failed):
    page = html(admin_client.get(url("execution_change", failed.execution_id)))
    assert '<pre class="cd-error-text">ValueError: boom</pre>' in page
    assert '<pre class="cd-traceback">Traceback (most recent call last):' in page
    assert "after 3 attempts" in page and "not retried yet" in page


def test_a_step_that_raised_is_drawn_red_with_its_error(
    admin_client, execution_factory, step_factory
):
    start = ago(minutes=10)
    execution = execution_factory(status="pending", attempts=1, started_at=start)
    step_factory(execution=execution, name="reserve", started_at=start, finished_at=start)
    step_factory(
        execution=execution,
        name="charge",
        error="ValueError: card declined",
        result=None,
        started_at=start + timedelta(seconds=1),
        finished_at=start + timedelta(seconds=3),
    )
    page = html(admin_client.get(url("execution_change", execution.pk)))
    row = page.split('<tr class="cd-row-failed">')[1].split("</tr>")[0]
    assert ">charge<" in row and "failed after 2.0 s" in row
    assert 'class="cd-work cd-error"' in row  # the red bar
    assert "<title>charge: failed after 2.0 s: ValueError: card declined</title>" in row
    assert '<span class="cd-badge cd-failed">failed</span>' in row
    assert ">ValueError: card declined</span>" in row  # the error, in the steps table
    assert page.count('class="cd-row-failed"') == 1  # the step that worked is not red


def test_execution_page_hides_event_name_and_superseded_when_they_say_nothing(
    admin_client, execution_factory
):
    plain = execution_factory(status="completed")
    page = html(admin_client.get(url("execution_change", plain.pk)))
    assert "conductor.invoke" not in page and "field-event_name" not in page
    assert "Superseded" not in page and "icon-no.svg" not in page


def test_execution_page_says_in_words_what_superseded_means(admin_client, execution_factory):
    old = execution_factory(
        status="running", dedupe_key="order-7", superseded=True, event_name="order.paid"
    )
    new = execution_factory(status="pending", dedupe_key="order-7")
    page = html(admin_client.get(url("execution_change", old.pk)))
    assert "Yes: a later invoke with the same dedupe key started a new execution" in page
    assert f'(<a href="{url("execution_change", new.pk)}">#{new.pk}</a>)' in page
    assert "This one still runs to its end" in page
    assert "icon-yes.svg" not in page
    assert "order.paid" in page  # an event's name is worth showing


def test_execution_page_explains_attempts_a_parked_run_did_not_use(admin_client, execution_factory):
    sleeper = execution_factory(
        status="sleeping", attempts=0, max_attempts=3, claims=1, run_at=later(hours=1)
    )
    page = html(admin_client.get(url("execution_change", sleeper.pk)))
    assert "0 of 3 used — 1 run so far; runs that parked (for a sleep, a child or a " in page
    assert ">0/3<" not in page
    assert re.search(r"sleeping</span> wakes in (59 min|1 h)", page)
    fresh = execution_factory(status="running", attempts=1, max_attempts=3, claims=1)
    page = html(admin_client.get(url("execution_change", fresh.pk)))
    assert "1 of 3 used" in page and "runs that parked" not in page
    ahead = execution_factory(
        status="running", attempts=0, max_attempts=3, claims=1, prefetched=True
    )
    page = html(admin_client.get(url("execution_change", ahead.pk)))
    assert "0 of 3 used — claimed ahead of a free thread: this run uses one when it ends" in page


def test_a_completed_execution_folds_away_an_earlier_retried_failure(
    admin_client, failed_execution_factory
):
    failure = failed_execution_factory(
        execution__status="completed",
        execution__error="ValueError: boom",
        retried_at=ago(minutes=1),
    )
    page = html(admin_client.get(url("execution_change", failure.execution_id)))
    assert "From an earlier attempt, retried since: ValueError: boom" in page
    assert "Earlier failure, retried" in page
    assert 'class="cd-error-text"' not in page and 'class="cd-traceback"' not in page
    failures = page.split('id="failures"')[1].split('id="steps"')[0]
    assert " open" not in failures  # collapsed
    assert "Traceback (most recent call last):" in failures  # one click away


# -- failed executions -------------------------------------------------------------------


def test_failure_list_shows_error_attempts_failed_and_retried_at(
    admin_client, failed, failed_execution_factory
):
    retried = failed_execution_factory(retried_at=timezone.now(), error="KeyError: 'x'\nmore")
    page = html(admin_client.get(url(FAILURES)))
    assert "ValueError: boom" in page and "KeyError: &#x27;x&#x27;" in page
    assert "more" not in page.split("KeyError")[1][:40]  # only the error's first line
    assert '<td class="field-attempts">3</td>' in page
    assert listed_ids(page) == {failed.pk, retried.pk}


def test_failure_filters_by_retried_and_task(admin_client, failed, failed_execution_factory):
    retried = failed_execution_factory(
        retried_at=timezone.now(), execution__task_name="resize", task_name="resize"
    )
    assert listed_ids(html(admin_client.get(url(FAILURES), {"retried": "no"}))) == {failed.pk}
    assert listed_ids(html(admin_client.get(url(FAILURES), {"retried": "yes"}))) == {retried.pk}
    assert listed_ids(html(admin_client.get(url(FAILURES), {"task": "resize"}))) == {retried.pk}


def test_failure_search_by_execution_id_task_or_error_words(
    admin_client, failed, failed_execution_factory
):
    other = failed_execution_factory(error="ConnectionRefusedError: db down")
    search = admin_client.get
    assert listed_ids(html(search(url(FAILURES), {"q": failed.execution_id}))) == {failed.pk}
    assert listed_ids(html(search(url(FAILURES), {"q": "refused"}))) == {other.pk}
    assert listed_ids(html(search(url(FAILURES), {"q": "echo"}))) == {failed.pk, other.pk}


def test_failure_page_shows_error_traceback_and_a_retry_button(admin_client, failed):
    page = html(admin_client.get(url("failedexecution_change", failed.pk)))
    assert '<pre class="cd-traceback">Traceback (most recent call last):' in page
    assert f'href="{url("execution_retry", failed.execution_id)}">Retry</a>' in page


# -- retry -------------------------------------------------------------------------------


def test_retry_action_asks_first_and_says_completed_steps_are_kept(admin_client, failed):
    page = html(post_action(admin_client, "retry_selected", [failed.execution_id], confirm=False))
    assert "Retry 1 execution?" in page
    assert "Completed steps are kept" in page
    assert 'name="post" value="yes"' in page and 'name="csrfmiddlewaretoken"' in page
    assert Execution.objects.get(pk=failed.execution_id).status == "failed"


def test_confirmed_retry_requeues_keeps_steps_and_skips_others(
    admin_client, failed, execution_factory
):
    done = execution_factory(status="completed")
    page = html(post_action(admin_client, "retry_selected", [failed.execution_id, done.pk]))
    assert "Retried 1 execution; its completed steps are kept." in page
    assert "Skipped 1 execution that is not failed or cancelled" in page
    execution = Execution.objects.get(pk=failed.execution_id)
    assert (execution.status, execution.attempts) == ("pending", 0)
    assert execution.steps.filter(name="charge").exists()
    failed.refresh_from_db()
    assert failed.retried_at is not None
    assert Execution.objects.get(pk=done.pk).status == "completed"


def test_retry_action_with_nothing_retryable_says_so_without_asking(
    admin_client, execution_factory
):
    running = execution_factory(status="running")
    page = html(post_action(admin_client, "retry_selected", [running.pk], confirm=False))
    assert "Skipped 1 execution that is not failed or cancelled" in page
    assert "Retry 1 execution?" not in page


def test_failure_list_retry_action_retries_their_executions(admin_client, failed):
    asked = html(post_action(admin_client, "retry_selected", [failed.pk], FAILURES, False))
    assert "Completed steps are kept" in asked
    assert f'name="_selected_action" value="{failed.pk}"' in asked
    page = html(post_action(admin_client, "retry_selected", [failed.pk], FAILURES))
    assert "Retried 1 execution; its completed steps are kept." in page
    assert Execution.objects.get(pk=failed.execution_id).status == "pending"


def test_retry_button_confirms_then_retries_and_returns_to_the_execution(admin_client, failed):
    detail = url("execution_change", failed.execution_id)
    assert f'href="{url("execution_retry", failed.execution_id)}">Retry</a>' in html(
        admin_client.get(detail)
    )
    asked = html(admin_client.get(url("execution_retry", failed.execution_id)))
    assert "Completed steps are kept" in asked
    assert Execution.objects.get(pk=failed.execution_id).status == "failed"
    response = admin_client.post(url("execution_retry", failed.execution_id), {"post": "yes"})
    assert response.status_code == 302 and response.url == detail
    page = html(admin_client.get(detail))
    assert "Retried 1 execution; its completed steps are kept." in page
    assert Execution.objects.get(pk=failed.execution_id).status == "pending"


def test_retry_button_on_an_execution_that_did_not_fail_says_so(admin_client, execution_factory):
    done = execution_factory(status="completed")
    page = html(admin_client.get(url("execution_retry", done.pk), follow=True))
    assert "Skipped 1 execution that is not failed or cancelled" in page
    assert ">Retry</a>" not in page


# -- cancel ------------------------------------------------------------------------------


def test_cancel_action_cancels_parked_ones_asks_running_ones_and_skips_finished(
    admin_client, execution_factory
):
    waiting = execution_factory(status="waiting", run_at=None)
    child = execution_factory(status="pending", parent=waiting, parent_step="make-invoice")
    sleeping = execution_factory(status="sleeping", run_at=later(hours=1))
    running = execution_factory(status="running", lease_owner="w1")
    done = execution_factory(status="completed")
    ids = [waiting.pk, sleeping.pk, running.pk, done.pk]
    asked = html(post_action(admin_client, "cancel_selected", ids, confirm=False))
    assert "Cancel 3 executions?" in asked and "1 of the selected cannot be cancelled" in asked
    page = html(post_action(admin_client, "cancel_selected", ids))
    assert "Cancelled 2 executions." in page
    assert "Asked 1 running execution to stop at its next step." in page
    assert "Skipped 1 execution that had already finished." in page
    statuses = dict(Execution.objects.values_list("id", "status"))
    assert statuses[waiting.pk] == statuses[sleeping.pk] == statuses[child.pk] == "cancelled"
    assert statuses[running.pk] == "running"
    assert Execution.objects.get(pk=running.pk).cancel_requested_at is not None
    assert statuses[done.pk] == "completed"


def test_cancel_button_cancels_after_confirmation(admin_client, execution_factory):
    pending = execution_factory(status="pending")
    page = html(admin_client.get(url("execution_change", pending.pk)))
    assert f'href="{url("execution_cancel", pending.pk)}">Cancel</a>' in page
    asked = html(admin_client.get(url("execution_cancel", pending.pk)))
    assert "Cancel 1 execution?" in asked
    page = html(
        admin_client.post(url("execution_cancel", pending.pk), {"post": "yes"}, follow=True)
    )
    assert "Cancelled 1 execution." in page
    assert Execution.objects.get(pk=pending.pk).status == "cancelled"


# -- run now -----------------------------------------------------------------------------


def test_run_now_action_makes_a_backoff_due_and_skips_the_others(admin_client, execution_factory):
    backoff = execution_factory(status="pending", attempts=1, run_at=later(minutes=10))
    due = execution_factory(status="pending")
    failed = execution_factory(status="failed")
    page = html(post_action(admin_client, "run_now_selected", [backoff.pk, due.pk, failed.pk]))
    assert "1 execution will run now instead of waiting." in page
    assert "Skipped 2 executions that are not pending with a later run time" in page
    backoff.refresh_from_db()
    assert backoff.run_at <= timezone.now() and backoff.attempts == 1


def test_run_now_button_posts_and_refuses_get(admin_client, execution_factory):
    delayed = execution_factory(status="pending", run_at=later(hours=1))
    page = html(admin_client.get(url("execution_change", delayed.pk)))
    assert f'action="{url("execution_run_now", delayed.pk)}"' in page and "Retry now" in page
    assert admin_client.get(url("execution_run_now", delayed.pk)).status_code == 405
    page = html(admin_client.post(url("execution_run_now", delayed.pk), follow=True))
    assert "1 execution will run now instead of waiting." in page
    delayed.refresh_from_db()
    assert delayed.run_at <= timezone.now()


@pytest.mark.django_db(transaction=True)
def test_run_now_wakes_idle_workers_of_its_queue(execution_factory):
    delayed = execution_factory(status="pending", queue="emails", run_at=later(hours=1))
    listener = connect_listener(READY_CHANNEL)
    try:
        assert run_now(delayed.pk) is True
        notes = list(listener.notifies(timeout=5, stop_after=1))
    finally:
        listener.close()
    assert [n.payload for n in notes] == ["emails"]
    assert run_now(delayed.pk) is False  # already due


# -- the admin's history -------------------------------------------------------------------


def history(execution_id):
    return list(
        LogEntry.objects.filter(object_id=str(execution_id)).values_list(
            "action_flag", "change_message", "user__username", "content_type__model"
        )
    )


def test_retry_cancel_and_run_now_leave_one_history_entry_per_execution(
    admin_client, admin_user, failed, execution_factory
):
    other = execution_factory(status="failed")
    done = execution_factory(status="completed")
    parked = execution_factory(status="sleeping", run_at=later(hours=1))
    running = execution_factory(status="running", lease_owner="w1")
    delayed = execution_factory(status="pending", run_at=later(hours=1))
    post_action(admin_client, "retry_selected", [failed.execution_id, other.pk, done.pk])
    post_action(admin_client, "cancel_selected", [parked.pk, running.pk])
    post_action(admin_client, "run_now_selected", [delayed.pk])
    retried = (CHANGE, "Retried (completed steps kept)", admin_user.username, "execution")
    assert history(failed.execution_id) == history(other.pk) == [retried]
    assert history(done.pk) == []  # skipped: nothing changed, nothing recorded
    assert [h[1] for h in history(parked.pk)] == ["Cancelled"]
    assert [h[1] for h in history(running.pk)] == ["Cancel requested (it stops at its next step)"]
    assert [h[1] for h in history(delayed.pk)] == ["Retried now (backoff or delay skipped)"]


def test_buttons_and_the_failure_list_record_history_too(
    admin_client, failed, failed_execution_factory, execution_factory
):
    admin_client.post(url("execution_retry", failed.execution_id), {"post": "yes"})
    pending = execution_factory(status="pending", run_at=later(hours=1))
    admin_client.post(url("execution_run_now", pending.pk))
    admin_client.post(url("execution_cancel", pending.pk), {"post": "yes"})
    other = failed_execution_factory()
    post_action(admin_client, "retry_selected", [other.pk], FAILURES)
    assert [h[1] for h in history(failed.execution_id)] == ["Retried (completed steps kept)"]
    assert sorted(h[1] for h in history(pending.pk)) == [
        "Cancelled",
        "Retried now (backoff or delay skipped)",
    ]
    assert history(other.execution_id)[0][3] == "execution"  # logged on the execution


def test_history_page_and_recent_actions_show_who_did_what(admin_client, admin_user, failed):
    post_action(admin_client, "retry_selected", [failed.execution_id])
    detail = html(admin_client.get(url("execution_change", failed.execution_id)))
    assert f'href="{url("execution_history", failed.execution_id)}"' in detail
    page = html(admin_client.get(url("execution_history", failed.execution_id)))
    assert "Retried (completed steps kept)" in page and admin_user.username in page
    index = html(admin_client.get(reverse("admin:index")))
    assert f'href="{url("execution_change", failed.execution_id)}"' in index.split("Recent")[1]


def test_viewer_sees_the_history_but_no_button_on_it(client, admin_client, failed):
    post_action(admin_client, "retry_selected", [failed.execution_id])
    viewer(client)
    page = html(client.get(url("execution_history", failed.execution_id)))
    assert "Retried (completed steps kept)" in page
    assert url("execution_retry", failed.execution_id) not in page
    assert url("execution_cancel", failed.execution_id) not in page


# -- permissions -------------------------------------------------------------------------


def test_staff_without_view_permission_cannot_open_any_page(client, failed):
    staff(client)
    for path in (
        url(LIST),
        url(FAILURES),
        url("execution_change", failed.execution_id),
        url("failedexecution_change", failed.pk),
        url("execution_overview"),
        url("execution_retry", failed.execution_id),
    ):
        assert client.get(path).status_code == 403, path


def test_viewer_sees_every_page_but_no_action_or_button(client, failed):
    viewer(client)
    listing = html(client.get(url(LIST)))
    assert "retry_selected" not in listing and "cancel_selected" not in listing
    assert "run_now_selected" not in listing
    assert "retry_selected" not in html(client.get(url(FAILURES)))
    detail = html(client.get(url("execution_change", failed.execution_id)))
    assert url("execution_retry", failed.execution_id) not in detail
    assert "ValueError: boom" in detail
    assert url("execution_retry", failed.execution_id) not in html(
        client.get(url("failedexecution_change", failed.pk))
    )
    assert "Executions by status" in html(client.get(url("execution_overview")))


@pytest.mark.parametrize(
    ("action", "name", "verb"),
    [
        ("retry_selected", LIST, "retry"),
        ("cancel_selected", LIST, "cancel"),
        ("run_now_selected", LIST, "run now"),
        ("retry_selected", FAILURES, "retry"),
    ],
)
def test_viewer_posting_an_action_is_refused_clearly(client, failed, action, name, verb):
    viewer(client)
    ids = [failed.pk if name == FAILURES else failed.execution_id]
    response = client.post(url(name), {"action": action, "_selected_action": ids, "post": "yes"})
    assert response.status_code == 403
    assert f"You cannot {verb} executions" in response.content.decode()
    assert "Can change execution" in response.content.decode()
    assert Execution.objects.get(pk=failed.execution_id).status == "failed"


@pytest.mark.parametrize(
    ("view", "method"),
    [("retry", "get"), ("retry", "post"), ("cancel", "post"), ("run_now", "post")],
)
def test_viewer_pressing_a_button_is_refused_clearly(client, failed, view, method):
    viewer(client)
    response = getattr(client, method)(
        url(f"execution_{view}", failed.execution_id), {"post": "yes"}
    )
    assert response.status_code == 403
    assert "You cannot" in response.content.decode()
    assert Execution.objects.get(pk=failed.execution_id).status == "failed"


def test_change_permission_is_enough_to_look_and_retry(client, failed):
    staff(client, "change_execution", "view_failedexecution")
    assert "ValueError: boom" in html(client.get(url("execution_change", failed.execution_id)))
    page = html(post_action(client, "retry_selected", [failed.execution_id]))
    assert "Retried 1 execution" in page


def test_nobody_adds_edits_or_deletes_executions_or_steps(admin_client, failed):
    assert admin_client.get(url("execution_add")).status_code == 403
    assert admin_client.get(url("failedexecution_add")).status_code == 403
    detail = url("execution_change", failed.execution_id)
    response = admin_client.post(detail, {"status": "completed", "task_name": "x"})
    assert response.status_code == 403
    assert 'name="task_name"' not in html(admin_client.get(detail))  # no edit form
    assert admin_client.post(url("execution_delete", failed.execution_id)).status_code == 403
    page = html(admin_client.get(url(LIST)))
    assert "delete_selected" not in page
    assert Execution.objects.get(pk=failed.execution_id).status == "failed"
    assert FailedExecution.objects.filter(pk=failed.pk).exists()
    with pytest.raises(NoReverseMatch):
        url("step_changelist")
    assert Step.objects.filter(execution_id=failed.execution_id).count() == 1


def test_operations_are_posts_protected_by_csrf(failed, admin_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    for path, data in (
        (url(LIST), {"action": "retry_selected", "_selected_action": [failed.execution_id]}),
        (url("execution_retry", failed.execution_id), {"post": "yes"}),
        (url("execution_run_now", failed.execution_id), {}),
        (url("execution_cancel", failed.execution_id), {"post": "yes"}),
    ):
        assert client.post(path, {**data, "post": "yes"}).status_code == 403, path
    assert Execution.objects.get(pk=failed.execution_id).status == "failed"


# -- overview ----------------------------------------------------------------------------


def test_overview_counts_executions_by_status_and_by_task(admin_client, execution_factory):
    recently = ago(minutes=5)
    execution_factory.create_batch(
        3, task_name="send-invoice", status="completed", finished_at=recently
    )
    execution_factory(task_name="send-invoice", status="completed", finished_at=ago(hours=3))
    execution_factory(task_name="send-invoice", status="failed", finished_at=recently)
    execution_factory(task_name="resize", status="pending")
    page = html(admin_client.get(url("execution_overview")))
    tiles = dict(re.findall(r'status__exact=(\w+)">\s*<span class="cd-number">([\d,+]+)<', page))
    assert tiles["completed"] == "4" and tiles["failed"] == "1" and tiles["pending"] == "1"
    assert tiles["running"] == "0"
    row = page.split('?task=send-invoice">send-invoice</a>')[1].split("</tr>")[0]
    assert 'status__exact=failed">1</a>' in row
    assert 'status__exact=completed">3</a>' in row  # completed in the last hour
    resize = page.split('?task=resize">resize</a>')[1].split("</tr>")[0]
    assert 'status__exact=pending">1</a>' in resize


def test_overview_counts_stop_at_a_cap(admin_client, execution_factory, monkeypatch):
    monkeypatch.setattr(overview, "STATUS_CAP", 2)
    monkeypatch.setattr(overview, "COMPLETED_CAP", 2)
    execution_factory.create_batch(3, status="failed")
    page = html(admin_client.get(url("execution_overview")))
    assert 'status__exact=failed">\n    <span class="cd-number">2+</span>' in page


def test_overview_shows_the_planner_estimate_beyond_the_cap(
    admin_client, execution_factory, monkeypatch
):
    monkeypatch.setattr(overview, "COMPLETED_CAP", 2)
    execution_factory.create_batch(20, status="completed")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE django_conductor_execution")
    page = html(admin_client.get(url("execution_overview")))
    assert 'status__exact=completed">\n    <span class="cd-number">≈ 20</span>' in page


def test_overview_shows_backlog_per_queue_and_the_oldest_ready_age(admin_client, execution_factory):
    oldest = execution_factory(queue="emails", run_at=ago(minutes=5), task_name="mail")
    execution_factory(queue="emails")
    execution_factory(queue="default")
    execution_factory(queue="default", run_at=later(hours=1))  # not ready yet
    execution_factory(queue="default", status="completed")
    page = html(admin_client.get(url("execution_overview")))
    assert '?queue=emails">emails</a></td><td class="cd-count">2<' in page
    assert '?queue=default">default</a></td><td class="cd-count">1<' in page
    assert f">#{oldest.pk}</a> mail" in page
    assert re.search(r'cd-number">5 min( \d+ s)?</span>\s*oldest ready', page)


def test_overview_draws_throughput_of_the_last_hour(admin_client, execution_factory):
    for minutes in (1, 1, 30, 90):
        execution_factory(status="completed", finished_at=ago(minutes=minutes, seconds=5))
    execution_factory(status="failed", finished_at=ago(minutes=1, seconds=5))
    page = html(admin_client.get(url("execution_overview")))
    assert '<span class="cd-number">4</span> finished in the last hour' in page
    assert "<title>1 min ago: 2 completed, 1 failed</title>" in page
    assert "<title>30 min ago: 1 completed</title>" in page
    assert page.count('class="cd-bar-completed"') == 2 and page.count('class="cd-bar-failed"') == 1
    assert "peak 3/min" in page


def test_overview_lists_live_workers_with_host_pid_queues_and_last_seen(
    admin_client, execution_factory
):
    WorkerHeartbeat.objects.create(
        worker_id="box-41-a", host="box", pid=41, queues=["emails", "default"], concurrency=4
    )
    WorkerHeartbeat.objects.create(
        worker_id="old-9-b", host="old", pid=9, queues=[], last_seen_at=ago(minutes=5)
    )
    execution_factory(status="running", lease_owner="box-41-a")
    page = html(admin_client.get(url("execution_overview")))
    assert "<td>box</td>" in page and "<td>41</td>" in page and "emails, default" in page
    assert '<td class="cd-count">1/4</td>' in page
    old_row = page.split("<td>old</td>")[1].split("</tr>")[0]
    assert "<td>all</td>" in old_row and ">late</span>" in old_row


def test_overview_is_linked_from_the_app_index_and_the_list(admin_client):
    overview_url = url("execution_overview")
    index = html(admin_client.get(reverse("admin:app_list", args=["django_conductor"])))
    assert f'href="{overview_url}">Overview</a>' in index
    assert f'href="{overview_url}">Overview</a>' in html(admin_client.get(url(LIST)))
    assert "No worker has sent a heartbeat" in html(admin_client.get(overview_url))


def test_durations_read_in_two_units_at_most():
    assert humanize_duration(timedelta(seconds=0.42)) == "0.42 s"
    assert humanize_duration(timedelta(seconds=3.5)) == "3.5 s"
    assert humanize_duration(timedelta(seconds=185)) == "3 min 5 s"
    assert humanize_duration(timedelta(hours=2, minutes=10, seconds=9)) == "2 h 10 min"
    assert humanize_duration(timedelta(days=1, hours=3, minutes=1)) == "1 d 3 h"
    assert humanize_duration(timedelta(hours=1)) == "1 h"


def test_times_read_relative_in_two_units_then_one():
    now = timezone.now()
    assert relative(now - timedelta(seconds=0.4), now) == "just now"
    assert relative(now - timedelta(seconds=7.9), now) == "7 s ago"
    assert relative(now - timedelta(seconds=185), now) == "3 min 5 s ago"
    assert relative(now - timedelta(minutes=20, seconds=6), now) == "20 min ago"
    assert relative(now + timedelta(hours=4, minutes=59, seconds=30), now) == "in 4 h 59 min"
    assert relative(now + timedelta(hours=20, minutes=37), now) == "in 20 h"


def test_every_time_shows_the_exact_one_on_hover():
    moment = timezone.now().replace(year=2025, month=3, day=4, hour=5, minute=6, second=7)
    text = when(moment, now=moment + timedelta(minutes=3))
    assert text == (
        f'<time datetime="{moment.isoformat()}" title="2025-03-04 05:06:07 UTC">3 min ago</time>'
    )
    assert when(None) == "—"


def test_the_lists_and_the_detail_share_one_date_format(admin_client, failed):
    moment = ago(days=3)
    Execution.objects.filter(pk=failed.execution_id).update(created_at=moment)
    FailedExecution.objects.filter(pk=failed.pk).update(failed_at=moment)
    shown = f'<time datetime="{moment.isoformat()}" title="{moment:%Y-%m-%d %H:%M:%S} UTC">3 d ago'
    assert shown in html(admin_client.get(url(LIST)))
    assert shown in html(admin_client.get(url(FAILURES)))
    assert shown in html(admin_client.get(url("execution_change", failed.execution_id)))


def test_overview_names_the_tasks_no_live_worker_has(admin_client, execution_factory):
    execution_factory(task_name="renamed-in-the-new-release", status="pending")
    execution_factory(task_name="echo", status="pending")
    WorkerHeartbeat.objects.create(
        worker_id="old-code", host="web-1", pid=10, tasks=["echo"], last_seen_at=timezone.now()
    )
    page = html(admin_client.get(url("execution_overview")))
    (warning,) = re.findall(r'<p class="cd-warning">(.*?)</p>', page)
    assert warning.startswith("No live worker has renamed-in-the-new-release: its executions")
    assert "echo" not in warning
