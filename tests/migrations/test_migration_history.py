"""Each service's migration history as files: linear, numbered, reviewed, named alike."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from alembic.util import to_tuple
from bali_common.migrations import (
    RELEASE_BEFORE_MIGRATIONS,
    alembic_config,
    metadata_of,
)
from bali_common.runtime import PLUMBING_MODELS, runtime_of
from bali_common.schema_version import heads_of, revisions_of
from migrations_support import SERVICES, SETTINGS, create_app, history, models

#: PostgreSQL cuts longer names (SQLAlchemy would shorten them differently on each backend).
POSTGRES_MAX_IDENTIFIER = 63


def scripts(service: str) -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config(history(service)))


@pytest.mark.parametrize("service", SERVICES)
def test_history_is_one_line_numbered_from_the_release_before_migrations(service: str) -> None:
    script = scripts(service)
    assert len(script.get_heads()) == 1, f"{service} has branches: renumber one revision"
    chain = list(reversed(list(script.walk_revisions())))
    assert [s.revision for s in chain] == [f"{n:04d}" for n in range(1, len(chain) + 1)]
    assert chain[0].revision == RELEASE_BEFORE_MIGRATIONS
    assert chain[0].down_revision is None
    for before, after in itertools.pairwise(chain):
        assert after.down_revision == before.revision


@pytest.mark.parametrize("service", SERVICES)
def test_the_start_check_reads_the_history_as_alembic_does(service: str) -> None:
    """Services check their database without importing Alembic: the same revisions and head."""
    script = scripts(service)
    assert revisions_of(history(service)) == {
        s.revision: to_tuple(s.down_revision, default=()) for s in script.walk_revisions()
    }
    assert heads_of(history(service)) == tuple(script.get_heads())


@pytest.mark.parametrize("service", SERVICES)
def test_every_revision_says_whether_it_runs_online(service: str) -> None:
    """The release before keeps running while a migration Job runs: each revision says
    whether that is safe (the template leaves `Online: ?` for its author to answer)."""
    for script in scripts(service).walk_revisions():
        docstring = ast.get_docstring(ast.parse(Path(script.path).read_text())) or ""
        summary, _, rest = docstring.partition("\n\n")
        assert summary, f"{script.path}: no docstring"
        assert "\n" not in summary, f"{script.path}: one line first, saying what it does"
        assert rest.startswith(("Online: yes", "Online: no")), f"{script.path}: Online: ?"


@pytest.mark.parametrize("service", SERVICES)
def test_the_service_checks_the_history_its_migrate_command_runs(
    service: str, tmp_path: Path
) -> None:
    app = create_app(service, SETTINGS[service](data_dir=tmp_path))
    definition = runtime_of(app).definition
    assert definition.migrations == history(service)
    assert [*PLUMBING_MODELS, *definition.models] == models(service)


@pytest.mark.parametrize("service", SERVICES)
def test_constraint_and_index_names_fit_postgresql(service: str) -> None:
    """Names longer than PostgreSQL keeps would differ between the backends."""
    for table in metadata_of(models(service)).tables.values():
        names = [c.name for c in table.constraints] + [i.name for i in table.indexes]
        for name in names:
            assert isinstance(name, str), f"{table.name}: a constraint without a name"
            assert len(name) <= POSTGRES_MAX_IDENTIFIER, f"{table.name}: {name} is too long"
