"""The admin in a real browser: log in, open a failed execution, retry it, run a worker,
and see it complete. Headless Chromium from the system package, driven by Playwright."""

import os
import threading
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
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
