from django.db import models


class SideEffect(models.Model):
    """A row per side effect a test task performs, to count them."""

    kind = models.CharField(max_length=50)
    value = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.kind}: {self.value}"
