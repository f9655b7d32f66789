"""Two tables of the same shape for the row-trigger workload: one a task subscribes to, one
no task does."""

from django.db import models


class TriggeredRow(models.Model):
    n = models.IntegerField()
    label = models.CharField(max_length=40)

    def __str__(self) -> str:
        return self.label


class PlainRow(models.Model):
    n = models.IntegerField()
    label = models.CharField(max_length=40)

    def __str__(self) -> str:
        return self.label
