"""The shop's durable tasks. A handler may run many times (after a sleep, a child, a retry
or a crash): it replays from the top, and every finished ``ctx.step`` returns its stored
result instead of running again. So side effects live inside steps, and step names are
fixed strings (or derived from the payload), the same on every replay."""

from datetime import timedelta

from django_conductor import task

from . import services


@task(name="process-order", max_attempts=5)
def process_order(event, ctx):
    """Charge, confirm, then have a child task issue the invoice."""
    order_id = event.payload["order_id"]
    charge = ctx.step("charge", services.charge_order, order_id)
    ctx.step("send-confirmation", services.confirm_order, order_id)
    # Parks this execution (freeing the worker) until the child ends; returns its result.
    invoice = ctx.invoke("make-invoice", "make-invoice", {"order_id": order_id})
    return {"order": order_id, "charge": charge["reference"], "invoice": invoice["number"]}


@task(name="make-invoice")
def make_invoice(event, ctx):
    """A child of process-order; usable on its own as well."""
    return ctx.step("create-invoice", services.create_invoice, event.payload["order_id"])


@task(name="recalculate-prices", max_attempts=3)
def recalculate_prices(event, ctx):
    """One step per product: after a failure, a retry skips the products already done."""
    markup = event.payload["markup_percent"]
    prices = {
        str(product_id): ctx.step(
            f"price-{product_id}", services.recalculate_price, product_id, markup
        )
        for product_id in event.payload["product_ids"]
    }
    return {"updated": len(prices), "prices": prices}


@task(name="welcome-reminder")
def welcome_reminder(event, ctx):
    """Welcome now, remind later: the sleep is durable and holds no worker meanwhile."""
    email = event.payload["email"]
    ctx.step("send-welcome", services.send_email, email, "Welcome to the shop")
    ctx.sleep("wait", timedelta(seconds=event.payload.get("wait_seconds", 86400)))
    ctx.step("send-reminder", services.send_email, email, "Your cart misses you")
    return {"emailed": email}


@task(name="sync-warehouse", max_attempts=3, retry_delays=[1])
def sync_warehouse(event, ctx):
    """Fails its first attempt on a flaky remote call; the retry a second later succeeds
    without counting the stock again, since that step is already recorded."""
    stock = ctx.step("count-stock", services.count_stock)
    return ctx.step("push-to-warehouse", services.push_to_warehouse, stock, event.attempt)
