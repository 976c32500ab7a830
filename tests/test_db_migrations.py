"""The migrations on either engine: every sql/NNNN_name.sql applied and
recorded under its own name in schema_migrations, whichever text ran (a
PostgreSQL variant in sql/pg/ only where the file must differ)."""

from harness import REPO


def test_every_migration_is_recorded_by_name(sb):
    names = sorted(p.stem for p in (REPO / "sql").glob("[0-9]*.sql"))
    assert names, "no migrations in sql/"
    got = [r[0] for r in sb.sql("SELECT name FROM schema_migrations "
                                "ORDER BY name")]
    assert got == names
    # A variant stands beside a file of the same name, never alone.
    for p in (REPO / "sql" / "pg").glob("*.sql"):
        assert (REPO / "sql" / p.name).exists(), p.name


def test_migrate_again_applies_nothing(sb):
    r = sb.cli("migrate")
    assert r.returncode == 0
    assert r.stdout.startswith("applied 0 migrations to "), r.stdout
