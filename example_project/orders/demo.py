"""What ``manage.py demo`` sets up and reports on, kept apart from the command's flow."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count

from django_conductor.models import Execution

from .models import Charge, Invoice, Order, Product, SentEmail
from .tasks import process_order, recalculate_prices, sync_warehouse, welcome_reminder

PRODUCTS = [
    ("Espresso beans", "12.50"),
    ("Grinder", "89.00"),
    ("Milk jug", "14.90"),
    ("Tamper", "24.00"),
    ("Descaler", "7.80"),
]


def ensure_admin(username: str, password: str) -> bool:
    """Create the superuser, or reset its password; True when it was created."""
    user, created = get_user_model().objects.get_or_create(
        username=username, defaults={"email": f"{username}@example.com"}
    )
    user.is_staff = user.is_superuser = True
    user.set_password(password)
    user.save()
    return created


@dataclass
class Started:
    ids: list[int]
    orders: list[int]
    lines: list[str]
    newcomer: str


def start_examples(wait_seconds: float) -> Started:
    """Create the shop's rows and invoke every example in one transaction: the work
    exists if and only if the rows do."""
    with transaction.atomic():
        orders = [
            Order.objects.create(email=f"customer{n}@example.com", amount=Decimal(amount))
            for n, amount in enumerate(("42.00", "19.90", "120.00"), start=1)
        ]
        handles = [
            process_order.invoke({"order_id": order.pk}, dedupe_key=f"order-{order.pk}")
            for order in orders
        ]
        product_ids = [
            Product.objects.get_or_create(
                name=name, defaults={"base_price": price, "price": price}
            )[0].pk
            for name, price in PRODUCTS
        ]
        batch = recalculate_prices.invoke({"product_ids": product_ids, "markup_percent": 20})
        newcomer = f"newcomer{orders[0].pk}@example.com"
        reminder = welcome_reminder.invoke({"email": newcomer, "wait_seconds": wait_seconds})
        flaky = sync_warehouse.invoke()
    lines = [
        f"process-order      x{len(orders)}  orders {', '.join(f'#{o.pk}' for o in orders)} "
        "(charge, confirm, then a make-invoice child)",
        f"recalculate-prices x1  one step per product, {len(product_ids)} products",
        f"welcome-reminder   x1  welcome, sleep {wait_seconds:g}s, reminder",
        "sync-warehouse     x1  fails its first attempt, retried 1s later",
    ]
    ids = [h.id for h in handles] + [batch.id, reminder.id, flaky.id]
    return Started(ids, [o.pk for o in orders], lines, newcomer)


def execution_tree(root_ids: list[int]) -> list[Execution]:
    """The given executions and all their descendants, each parent before its children."""
    found: dict[int, Execution] = {}
    frontier = list(root_ids)
    while frontier:
        rows = Execution.objects.filter(pk__in=frontier).annotate(step_count=Count("steps"))
        found.update((row.pk, row) for row in rows)
        frontier = list(
            Execution.objects.filter(parent__in=frontier)
            .exclude(pk__in=found)
            .values_list("pk", flat=True)
        )
    children: dict[int | None, list[Execution]] = {}
    for execution in sorted(found.values(), key=lambda e: e.pk):
        children.setdefault(execution.parent_id, []).append(execution)
    ordered: list[Execution] = []

    def visit(execution: Execution) -> None:
        ordered.append(execution)
        for child in children.get(execution.pk, []):
            visit(child)

    for root_id in root_ids:
        if root_id in found:
            visit(found[root_id])
    return ordered


def side_effects(started: Started) -> list[tuple[str, int, int]]:
    """(what, done, expected) for this run, counted from the shop's own tables."""
    confirmations = [f"Order #{pk} confirmed" for pk in started.orders]
    orders = len(started.orders)
    return [
        ("charges", Charge.objects.filter(order__in=started.orders).count(), orders),
        ("invoices", Invoice.objects.filter(order__in=started.orders).count(), orders),
        ("confirmations", SentEmail.objects.filter(subject__in=confirmations).count(), orders),
        ("welcome + reminder e-mails", SentEmail.objects.filter(to=started.newcomer).count(), 2),
    ]


def status_counts(executions: list[Execution]) -> Counter[str]:
    return Counter(e.status for e in executions)


def summary_table(executions: list[Execution]) -> list[str]:
    """One line per execution: id, task, status, attempts, steps, duration, result."""
    header = ("id", "task", "status", "attempts", "steps", "duration", "result")
    rows = [header] + [
        (
            f"#{e.pk}",
            ("  └ " if e.parent_id else "") + e.task_name,
            e.status,
            f"{e.attempts}/{e.max_attempts}",
            str(e.step_count),
            _duration(e.duration),
            _short(e.result if e.status == "completed" else e.error),
        )
        for e in executions
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def _duration(value: timedelta | None) -> str:
    return "-" if value is None else f"{value.total_seconds():.2f}s"


def _short(value: object, width: int = 56) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text if len(text) <= width else text[: width - 1] + "…"
