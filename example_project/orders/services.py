"""The shop's side effects. Tasks call these only inside ``ctx.step``, so each runs once
per execution; they are also idempotent where it is cheap, because the one step that is
in flight when a worker dies runs again."""

from __future__ import annotations

import logging
from decimal import Decimal

from django.db import transaction

from .models import Charge, Invoice, Order, Product, SentEmail

logger = logging.getLogger(__name__)


def charge_order(order_id: int) -> dict:
    """Take the payment (one Charge per order, whatever happens)."""
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order_id)
        charge, _ = Charge.objects.get_or_create(
            order=order,
            defaults={"amount": order.amount, "reference": f"ch_{order.pk:06d}"},
        )
        _set_status(order, Order.Status.CHARGED)
    logger.info("Charged %s for order %s", charge.amount, order_id)
    return {"id": charge.pk, "reference": charge.reference, "amount": str(charge.amount)}


def send_email(to: str, subject: str, body: str = "") -> dict:
    """Send an e-mail; here it lands in the SentEmail outbox table."""
    email = SentEmail.objects.create(to=to, subject=subject, body=body)
    logger.info("Sent %r to %s", subject, to)
    return {"id": email.pk}


def confirm_order(order_id: int) -> dict:
    order = Order.objects.get(pk=order_id)
    sent = send_email(order.email, f"Order #{order.pk} confirmed", f"We charged {order.amount}.")
    _set_status(order, Order.Status.CONFIRMED)
    return sent


def create_invoice(order_id: int) -> dict:
    """Issue the order's invoice (one per order) and return its number."""
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order_id)
        invoice, _ = Invoice.objects.get_or_create(
            order=order, defaults={"number": f"INV-{order.pk:05d}", "amount": order.amount}
        )
        _set_status(order, Order.Status.INVOICED)
    return {"number": invoice.number, "amount": str(invoice.amount)}


def recalculate_price(product_id: int, markup_percent: int) -> str:
    """Set a product's price from its base price; the same input gives the same price."""
    product = Product.objects.get(pk=product_id)
    factor = 1 + Decimal(markup_percent) / 100
    product.price = (product.base_price * factor).quantize(Decimal("0.01"))
    product.save(update_fields=["price", "updated_at"])
    return str(product.price)


def count_stock() -> dict:
    return {"products": Product.objects.count()}


def push_to_warehouse(stock: dict, attempt: int) -> dict:
    """Stands in for a remote API that times out on the first call and then works."""
    if attempt == 1:
        raise ConnectionError("warehouse API timed out (simulated on the first attempt)")
    logger.info("Pushed stock levels %s to the warehouse", stock)
    return {"accepted": stock["products"]}


def _set_status(order: Order, status: str) -> None:
    order.status = status
    order.save(update_fields=["status"])
