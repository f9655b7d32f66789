"""The admin inspector: pages render, failed executions can be retried with permission."""

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from django_conductor.models import Execution, FailedExecution

pytestmark = pytest.mark.django_db


@pytest.fixture
def failed(failed_execution_factory, step_factory):
    failure = failed_execution_factory()
    step_factory(execution=failure.execution, name="charge", result={"id": "ch_1"})
    return failure


def viewer(client):
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_execution", "view_failedexecution"])
    )
    client.force_login(user)
    return user


def retry_post(client, failure):
    url = reverse("admin:django_conductor_failedexecution_changelist")
    return client.post(
        url, {"action": "retry_executions", "_selected_action": [failure.pk]}, follow=True
    )


def test_execution_pages_render_payload_steps_and_result(admin_client, failed):
    listing = admin_client.get(reverse("admin:django_conductor_execution_changelist"))
    assert listing.status_code == 200
    assert "echo" in listing.content.decode()
    detail = admin_client.get(
        reverse("admin:django_conductor_execution_change", args=[failed.execution_id])
    )
    page = detail.content.decode()
    assert detail.status_code == 200
    assert "charge" in page and "ch_1" in page


def test_failed_execution_pages_show_error_and_traceback(admin_client, failed):
    listing = admin_client.get(reverse("admin:django_conductor_failedexecution_changelist"))
    assert "ValueError: boom" in listing.content.decode()
    detail = admin_client.get(
        reverse("admin:django_conductor_failedexecution_change", args=[failed.pk])
    )
    assert "<pre>Traceback (most recent call last):" in detail.content.decode()


def test_retry_action_requeues_and_keeps_steps(admin_client, failed):
    response = retry_post(admin_client, failed)
    assert "Retried 1 execution; its completed steps are kept." in response.content.decode()
    execution = Execution.objects.get(pk=failed.execution_id)
    assert (execution.status, execution.attempts) == ("pending", 0)
    assert execution.steps.filter(name="charge").exists()
    failed.refresh_from_db()
    assert failed.retried_at is not None


def test_retry_action_skips_executions_no_longer_failed(admin_client, failed):
    Execution.objects.filter(pk=failed.execution_id).update(status="completed")
    response = retry_post(admin_client, failed)
    assert "Skipped 1 execution that is no longer failed." in response.content.decode()
    assert Execution.objects.get(pk=failed.execution_id).status == "completed"


def test_view_only_staff_can_look_but_not_retry(client, failed):
    viewer(client)
    url = reverse("admin:django_conductor_failedexecution_changelist")
    page = client.get(url)
    assert page.status_code == 200
    assert "retry_executions" not in page.content.decode()
    retry_post(client, failed)
    assert Execution.objects.get(pk=failed.execution_id).status == "failed"


def test_nobody_can_add_change_or_delete_executions(admin_client, failed):
    add = admin_client.get(reverse("admin:django_conductor_execution_add"))
    assert add.status_code == 403
    delete = admin_client.post(
        reverse("admin:django_conductor_execution_delete", args=[failed.execution_id])
    )
    assert delete.status_code == 403
    assert Execution.objects.filter(pk=failed.execution_id).exists()
    assert FailedExecution.objects.filter(pk=failed.pk).exists()
