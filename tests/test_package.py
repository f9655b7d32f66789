"""What a user installs is what the app needs: the wheel, built through the sdist as a release
is, ships every file of the package, and imports and sets up in an environment of its own."""

import shutil
import subprocess
import sys
import sysconfig
import tarfile
import textwrap
import venv
import zipfile
from pathlib import Path

import pytest

from .conftest import ROOT

PACKAGE = ROOT / "django_conductor"

APP_SETUP = """
import pathlib, sys

import django
from django.conf import settings

settings.configure(
    INSTALLED_APPS=[
        "django.contrib.admin",
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.sessions",
        "django.contrib.messages",
        "django.contrib.staticfiles",
        "django_conductor",
    ],
    DATABASES={"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "unused"}},
    TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}],
    STATIC_URL="/static/",
    USE_TZ=True,
)
django.setup()

import django_conductor
from django.contrib.staticfiles import finders
from django.db.migrations.loader import MigrationLoader
from django.template.loader import get_template

installed = pathlib.Path(django_conductor.__file__).parent
assert installed.is_relative_to(sys.prefix), f"imported from {installed}, not the fresh venv"
assert (installed / "py.typed").is_file()
template = get_template("admin/django_conductor/execution/change_form.html")
assert pathlib.Path(template.origin.name).is_relative_to(installed), template.origin.name
assert pathlib.Path(finders.find("django_conductor/admin.css")).is_relative_to(installed)
loader = MigrationLoader(None, ignore_no_migrations=True)
print("\\n".join(sorted(name for app, name in loader.disk_migrations if app == "django_conductor")))
"""


def package_files():
    """Every file of the source package (bytecode aside), as paths inside a wheel."""
    return {
        path.relative_to(ROOT).as_posix()
        for path in PACKAGE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


# Left-overs of earlier builds and environments: setuptools would read a stale
# *.egg-info/SOURCES.txt back into the sdist, hiding a file that package-data forgets.
NOT_SOURCE = shutil.ignore_patterns(
    ".git",
    ".venv*",
    "venv",
    ".tox",
    "*.egg-info",
    "build",
    "dist",
    "_build",
    "__pycache__",
    ".*_cache",
    "results",
)


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """The sdist, and the wheel that `build` makes from it, from a clean copy of the source
    tree and without touching the network."""
    source = tmp_path_factory.mktemp("source") / "django-conductor"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return sdist, wheel


def test_the_wheel_ships_every_file_of_the_package(dist):
    _, wheel = dist
    with zipfile.ZipFile(wheel) as archive:
        shipped = {name for name in archive.namelist() if name.startswith("django_conductor/")}
    assert shipped == package_files()
    assert "django_conductor/py.typed" in shipped
    assert "django_conductor/static/django_conductor/admin.css" in shipped
    assert "django_conductor/templates/admin/django_conductor/change_list.html" in shipped
    assert "django_conductor/migrations/0001_initial.py" in shipped


def test_the_sdist_and_wheel_metadata_pass_twine_check_strict(dist):
    result = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, dist)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_sdist_carries_the_test_suite_and_no_bytecode(dist):
    sdist, _ = dist
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for needed in [
        "pyproject.toml",
        "README.md",
        "tox.ini",
        "tests/conftest.py",
        "tests/settings.py",
        "tests/testapp/models.py",
        "docs/reference/checks.md",
    ]:
        assert needed in names, needed
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    assert not [name for name in names if name.startswith("docs/_build")]


def test_the_installed_wheel_sets_up_with_its_templates_static_files_and_migrations(dist, tmp_path):
    _, wheel = dist
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    # The dependencies come from this environment, appended after the fresh venv's own
    # site-packages, so the wheel's copy of the package is the one imported.
    fresh_site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    (Path(fresh_site) / "zz_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    result = subprocess.run(
        [str(python), "-I", "-c", textwrap.dedent(APP_SETUP)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    on_disk = sorted(path.stem for path in (PACKAGE / "migrations").glob("0*.py"))
    assert result.stdout.split() == on_disk
