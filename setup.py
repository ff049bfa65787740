"""Only what pyproject.toml cannot say: the wheel carries the migrations.

Their source stays at the top of the checkout (alembic/, where `alembic revision` writes); in the wheel they are the
package data of service/db/migrations/, where service.db.migrate finds them when Airlock runs outside a checkout.
"""

from setuptools import find_namespace_packages, setup

MIGRATIONS = "service.db.migrations"

setup(
    # Namespace discovery: folders of package data (webui/templates, webui/static) are packages to setuptools too.
    packages=[
        *find_namespace_packages(include=["service*", "webui*"], exclude=["*__pycache__"]),
        MIGRATIONS,
        f"{MIGRATIONS}.versions",
    ],
    package_dir={MIGRATIONS: "alembic", f"{MIGRATIONS}.versions": "alembic/versions"},
)
