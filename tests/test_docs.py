"""The reference pages are checked against the code, so that a new setting or check that the
docs forget fails CI instead of misleading a reader."""

import ast
import re
from datetime import timedelta
from pathlib import Path

from django.test import override_settings

import django_conductor.checks
from django_conductor.checks import check_settings
from django_conductor.conf import PREFIX, Settings

REFERENCE = Path(__file__).resolve().parent.parent / "docs" / "reference"
PROBE = timedelta(seconds=12345.5)


def setting_names():
    """Upper-case names on ``Settings`` that a ``CONDUCTOR_*`` setting actually overrides."""
    names = set()
    for name in dir(Settings):
        if not name.isupper():
            continue
        with override_settings(**{PREFIX + name: PROBE}):
            if getattr(Settings(), name) != getattr(Settings, name):
                names.add(name)
    return names


def documented_defaults():
    """``{name: default}`` from the table in settings.md, defaults parsed as Python literals."""
    lines = (REFERENCE / "settings.md").read_text().splitlines()
    rows = [line for line in lines if line.startswith(f"| `{PREFIX}")]
    defaults = {}
    for row in rows:
        match = re.match(rf"\| `{PREFIX}(\w+)` \| `([^`]*)` \|", row)
        assert match, f"a settings row this test cannot read: {row}"
        defaults[match[1]] = ast.literal_eval(match[2])
    return defaults


def check_ids_in_code():
    """Ids in the checks module's source (every module of it, should it become a package),
    and in the task backend's, whose checks Django's tasks framework runs."""
    path = Path(django_conductor.checks.__file__)
    files = sorted(path.parent.glob("*.py")) if path.name == "__init__.py" else [path]
    files += sorted((Path(django_conductor.checks.__file__).parent / "backends").glob("*.py"))
    source = "\n".join(file.read_text() for file in files)
    return set(re.findall(r"django_conductor\.([EW]\d{3})", source))


def check_sections():
    """``{id: section text}`` for every ``## `django_conductor.X000``` heading in checks.md."""
    text = (REFERENCE / "checks.md").read_text()
    parts = re.split(r"^## `django_conductor\.([EW]\d{3})`", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_settings_introspection_finds_the_settings():
    names = setting_names()
    assert {"CONCURRENCY", "LEASE", "RETRY_DELAYS"} <= names
    assert "DURATIONS" not in names


def test_settings_reference_lists_every_setting_with_the_default_the_code_has():
    documented = documented_defaults()
    code = {name: getattr(Settings, name) for name in setting_names()}
    assert sorted(code.keys() - documented.keys()) == [], "settings missing from settings.md"
    assert sorted(documented.keys() - code.keys()) == [], "settings.md lists unknown settings"
    wrong = {
        name: (documented[name], default)
        for name, default in code.items()
        if documented[name] != default
    }
    assert not wrong, f"documented default != code default: {wrong}"


def test_checks_reference_has_a_section_for_every_check_id_and_no_other():
    sections = check_sections()
    code = check_ids_in_code()
    assert sorted(code - sections.keys()) == [], "check ids without a section in checks.md"
    assert sorted(sections.keys() - code) == [], "checks.md sections for ids checks.py lacks"
    text = (REFERENCE / "checks.md").read_text()
    for check_id in sections:
        assert f"(check-{check_id.lower()})=" in text, f"no label for {check_id}"


def validated_for_e004():
    """Settings for which a nonsense value makes ``check_settings`` report E004."""
    names = set()
    for name in setting_names():
        with override_settings(**{PREFIX + name: "nonsense"}):
            errors = check_settings()
        if any(
            e.id == "django_conductor.E004" and e.msg.startswith(f"{PREFIX}{name} ") for e in errors
        ):
            names.add(name)
    return names


def test_e004_section_names_every_setting_it_validates():
    validated = validated_for_e004()
    assert validated, "check_settings reported E004 for no setting at all"
    section = check_sections()["E004"]
    named = set(re.findall(rf"`{PREFIX}(\w+)`", section))
    assert sorted(validated - named) == [], "E004 validates settings its section does not name"
    assert sorted(named - validated) == [], "the E004 section names settings it does not check"
