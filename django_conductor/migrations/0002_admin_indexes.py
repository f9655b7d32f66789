from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("django_conductor", "0001_initial"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="execution",
            index=models.Index(
                condition=models.Q(("finished_at__isnull", False)),
                fields=["finished_at"],
                include=["status", "task_name"],
                name="conductor_finished_at",
            ),
        ),
        migrations.AddIndex(
            model_name="execution",
            index=models.Index(
                condition=models.Q(("status__in", ("failed", "cancelled"))),
                fields=["status", "-id"],
                include=["task_name"],
                name="conductor_failed_cancelled",
            ),
        ),
        migrations.AddIndex(
            model_name="execution",
            index=models.Index(
                condition=models.Q(("dedupe_key__isnull", False)),
                fields=["dedupe_key"],
                name="conductor_dedupe_key",
                opclasses=["varchar_pattern_ops"],
            ),
        ),
    ]
