from django.db import models


class SideEffect(models.Model):
    """A row per side effect a test task performs, to count them."""

    kind = models.CharField(max_length=50)
    value = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.kind}: {self.value}"


class Order(models.Model):
    """A model with row triggers (tests/testapp/row_tasks.py)."""

    total = models.IntegerField(default=0)
    status = models.CharField(max_length=20, default="new")
    note = models.TextField(blank=True, default="")

    def __str__(self) -> str:
        return f"order {self.pk}"


class Shipment(models.Model):
    """A model whose table name is mixed-case, and which no task subscribes to."""

    label = models.CharField(max_length=20)

    class Meta:
        db_table = "Conductor Shipments"

    def __str__(self) -> str:
        return self.label


class Widget(models.Model):
    """A table in a schema of its own (made by this app's migration 0003)."""

    name = models.TextField()

    class Meta:
        managed = False
        db_table = '"conductor_other"."widget"'

    def __str__(self) -> str:
        return self.name
