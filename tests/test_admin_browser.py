"""The admin in a real browser: log in, open a failed execution, retry it, run a worker,
and see it complete. Headless Chromium from the system package, driven by Playwright."""

import os
import threading
from datetime import timedelta
from urllib.parse import urlparse

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.staticfiles import finders
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from django_conductor.models import Execution, FailedExecution, Step
from django_conductor.worker import Worker
from tests.testapp.models import SideEffect

sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM}"),
    pytest.mark.django_db(transaction=True),
]


def off_the_event_loop(fn, *args):
    """Run database work in a thread of its own. Playwright's sync API keeps an asyncio loop
    running in the test's thread, and Django refuses ORM calls from a thread with a running
    loop (SynchronousOnlyOperation); a fresh thread has none, and its own connection."""
    outcome = {}

    def target():
        try:
            outcome["value"] = fn(*args)
        except BaseException as exc:  # re-raised in the test's thread
            outcome["error"] = exc
        finally:
            connection.close()  # this thread's own connection, or the test database stays busy

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive(), "database work did not finish within 120 s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def serve_static(page):
    """The test settings install no staticfiles app, so the live server serves no CSS: the
    browser gets each static file straight from its app's directory instead."""

    def fulfil(route):
        path = urlparse(route.request.url).path.removeprefix(settings.STATIC_URL)
        found = finders.find(path)
        if found:
            route.fulfill(path=found)
        else:
            route.continue_()

    page.route(f"**{settings.STATIC_URL}**", fulfil)


def drain_with_a_worker():
    Worker(install_signal_handlers=False, burst=True, concurrency=2).run()


def state(execution_id):
    execution = Execution.objects.get(pk=execution_id)
    return execution.status, execution.result, SideEffect.objects.filter(kind="charge").count()


@pytest.fixture
def failed_order():
    """An "order" that failed for good after its "charge" step was recorded."""
    User.objects.create_superuser("ops", "ops@example.com", "s3cret-pass")
    started = timezone.now() - timedelta(minutes=3)
    execution = Execution.objects.create(
        task_name="order",
        payload={"order": 7},
        status="failed",
        attempts=3,
        max_attempts=3,
        error="RuntimeError: database hiccup while saving",
        started_at=started,
        finished_at=started + timedelta(seconds=4),
    )
    Step.objects.create(
        execution=execution,
        name="charge",
        result={"id": "ch_1", "effect": "charge"},
        started_at=started,
        finished_at=started + timedelta(seconds=1),
    )
    FailedExecution.objects.create(
        execution=execution,
        task_name="order",
        error=execution.error,
        traceback="Traceback (most recent call last):\nRuntimeError: database hiccup while saving",
        attempts=3,
    )
    return execution


def test_retry_a_failed_execution_in_the_browser_and_see_it_complete(live_server, failed_order):
    detail = live_server.url + reverse(
        "admin:django_conductor_execution_change", args=[failed_order.pk]
    )
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{live_server.url}/admin/login/?next={detail}")
            page.fill("#id_username", "ops")
            page.fill("#id_password", "s3cret-pass")
            page.click("input[type=submit]")
            page.wait_for_url(detail)
            assert page.inner_text(".field-status_display .cd-badge") == "failed"
            assert "charge" in page.inner_text("#steps")

            page.click("text=Retry")
            assert "Completed steps are kept" in page.inner_text("#content-main")
            page.click("input[value='Yes, retry']")
            page.wait_for_url(detail)
            message = page.inner_text(".messagelist")
            assert "Retried 1 execution; its completed steps are kept." in message
            assert page.inner_text(".field-status_display .cd-badge") == "pending"

            off_the_event_loop(drain_with_a_worker)
            page.reload()
            assert page.inner_text(".field-status_display .cd-badge") == "completed"
            assert "ch_1" in page.inner_text(".field-result_display")
            assert "Retry" not in page.inner_text(".object-tools")
        finally:
            browser.close()
    status, result, charges = off_the_event_loop(state, failed_order.pk)
    assert (status, result) == ("completed", {"charge": "ch_1"})
    assert charges == 0  # the recorded charge step was replayed, not run again


@pytest.fixture
def busy_lists():
    """Rows in every state with the widest values the list columns show, and failures."""
    User.objects.create_superuser("ops", "ops@example.com", "s3cret-pass")
    now = timezone.now()
    parent = Execution.objects.create(task_name="process-order", status="waiting", run_at=None)
    rows = [
        {"status": "pending", "attempts": 2, "run_at": now + timedelta(hours=4, minutes=59)},
        {"status": "pending", "run_at": now + timedelta(days=1, hours=23)},
        {"status": "sleeping", "run_at": now + timedelta(hours=20, minutes=37)},
        {"status": "running", "started_at": now - timedelta(hours=9), "cancel_requested_at": now},
        {"status": "completed", "started_at": now - timedelta(minutes=9, seconds=59)},
        {"status": "failed", "attempts": 10, "max_attempts": 10, "priority": -100},
    ]
    for n, row in enumerate(rows * 3):
        execution = Execution.objects.create(
            task_name=("welcome-reminder", "orders.tasks.send_confirmation_email")[n % 2],
            queue="notifications-high",
            parent=parent,
            parent_step=f"child-{n}",
            created_at=now - timedelta(hours=9, minutes=59),
            finished_at=now if row["status"] in ("completed", "failed") else None,
            **row,
        )
        if row["status"] == "failed":
            FailedExecution.objects.create(
                execution=execution,
                task_name=execution.task_name,
                error="PaymentGatewayTimeout: the card network did not answer within 10 s "
                "while charging order 2113 for the second time today",
                attempts=10,
                retried_at=now - timedelta(minutes=1) if n % 2 else None,
            )


#: What scrolls sideways on a list page, if anything: the page or the table's box.
OVERFLOW = """() => {
    const page = document.scrollingElement;
    const results = document.querySelector('#changelist .results');
    return {page: page.scrollWidth - window.innerWidth,
            table: results.scrollWidth - results.clientWidth};
}"""


def test_lists_fit_a_laptop_screen_without_scrolling_sideways(live_server, busy_lists):
    lists = ("execution", "failedexecution")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for width in (1280, 1440):
                page = browser.new_page(viewport={"width": width, "height": 800})
                serve_static(page)
                page.goto(f"{live_server.url}/admin/login/")
                page.fill("#id_username", "ops")
                page.fill("#id_password", "s3cret-pass")
                page.click("input[type=submit]")
                page.wait_for_url(f"{live_server.url}/admin/")
                for sidebar in ("true", "false"):  # the navigation sidebar open, then folded
                    page.evaluate(
                        f"localStorage.setItem('django.admin.navSidebarIsOpen', '{sidebar}')"
                    )
                    for model in lists:
                        changelist = reverse(f"admin:django_conductor_{model}_changelist")
                        page.goto(live_server.url + changelist)
                        where = f"{model} list at {width} px, sidebar open: {sidebar}"
                        assert page.locator("#changelist-filter").is_visible(), where  # styled
                        assert page.evaluate(OVERFLOW) == {"page": 0, "table": 0}, where
                        last = page.locator("#result_list thead th").last
                        box = last.bounding_box()
                        assert box and box["x"] + box["width"] <= width, where
                page.close()
        finally:
            browser.close()
