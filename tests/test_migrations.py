from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection, transaction

from django_conductor.exceptions import TablesMissing
from django_conductor.store.schema import check_tables


@pytest.mark.django_db
def test_models_and_migrations_agree():
    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


@pytest.mark.django_db
def test_a_database_whose_migrations_are_behind_the_package_says_to_run_migrate():
    check_tables()  # migrated: nothing is missing
    with transaction.atomic():
        with connection.cursor() as cursor:  # as before migration 0013
            cursor.execute("ALTER FUNCTION django_conductor_record_steps RENAME TO hidden")
        with pytest.raises(TablesMissing) as missing:
            check_tables()
        transaction.set_rollback(True)  # the rename goes with the transaction
    assert str(missing.value) == (
        "django_conductor's functions do not exist in database "
        f"{connection.settings_dict['NAME']!r} (django_conductor_record_steps): its "
        "migrations are behind this version of the package; run `python manage.py migrate`."
    )
    check_tables()
