from datetime import timedelta

from django_conductor import NonRetryableError, task

__all__ = ["drop_when_done", "keep_an_hour", "parent_of_one"]


@task(name="drop-when-done", remove_on_complete=True)
def drop_when_done(event, ctx):
    return ctx.step("work", lambda: event.payload)


@task(name="keep-an-hour", remove_on_complete=timedelta(hours=1), remove_on_fail=True)
def keep_an_hour(event, ctx):
    if event.payload and event.payload.get("fail"):
        raise NonRetryableError("asked to fail")
    return "kept"


@task(name="parent-of-one", remove_on_complete=True)
def parent_of_one(event, ctx):
    return ctx.invoke("child", "echo", {"from": "parent"})
