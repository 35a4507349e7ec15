"""Amounts: NUMERIC(18, 2), so that every amount the XSD accepts fits.

The XSD's ``Amount`` has totalDigits=16 and fractionDigits=2: 16 digits before the
point are valid (``1234567890123456``), which NUMERIC(16, 2) refuses on PostgreSQL,
MySQL and Oracle. Such a batch failed every delivery and every replay there, while a
SQLite level stored it. Every other column was checked against its XSD type: integers
stop at 2147483647 (INTEGER), texts at their ``maxLength`` in characters (VARCHAR /
NVARCHAR2 of the same length), times are canonical seconds (DATETIME / DATE).

On SQLite an amount becomes decimal text: NUMERIC affinity keeps a 64-bit float, which
rounds 16-digit amounts (99999999999999.99 read back as …98); text stays exact. SQLite
cannot alter a column's type, so the table is rebuilt here, not by Alembic's batch mode:
its copy casts the float to text, which SQLite cuts to 15 significant digits
(12345678901234.56 became '12345678901234.6') and writes unlike new rows ('1234.5',
'100'). ``printf('%.2f')`` gives every digit the float holds, as new rows are written
('1234.50'). A view or trigger on the table stops the rebuild (or, for a trigger, would
be dropped with it): the upgrade refuses and names them. The other databases widen the
column in place. Frozen like 0001.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from alembic import op

from adapters.frontdb import fold_identifier
from schemas.catalog import load_catalog
from schemas.errors import ConfigError

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _n(name: str) -> str:
    return fold_identifier(name, op.get_bind().dialect.name)


def _sqlite() -> bool:
    return bool(op.get_bind().dialect.name == "sqlite")


def _amount(precision: int) -> Any:
    if _sqlite() and precision == 18:
        return sa.String(precision + 1)
    return sa.Numeric(precision, 2)


def _amount_tables() -> Iterator[tuple[str, Any, list[Any]]]:
    """Each element table with amounts: its name, its spec, its Amount fields."""
    for code, spec in load_catalog(1).elements.items():
        fields = [f for f in spec.fields.values() if f.type_name == "Amount"]
        if fields:
            yield _n(f"ST_{code}"), spec, fields


def _amounts(old: Any, new: Any) -> None:
    for name, spec, fields in _amount_tables():
        if _sqlite():
            _refuse_dependents(name)
        with op.batch_alter_table(name) as table:
            for f in fields:
                # MySQL's MODIFY restates the whole column: without it NOT NULL is lost.
                table.alter_column(_n(f.code), existing_type=old, type_=new,
                                   existing_nullable=not (f.required or f.code in spec.key))


def _refuse_dependents(table: str) -> None:
    """Views and triggers naming ``table``: a rebuild fails on them or drops them."""
    word = re.compile(rf"(?<![\w$]){re.escape(table)}(?![\w$])", re.IGNORECASE)
    dependents = [f"{kind} {name}" for kind, name, on, sql in op.get_bind().exec_driver_sql(
        "SELECT type, name, tbl_name, sql FROM sqlite_master "
        "WHERE type IN ('view', 'trigger') ORDER BY name")
        if on.lower() == table.lower() or word.search(sql or "")]
    if dependents:
        raise ConfigError(
            f"cannot migrate {table} across revision 0003: it is used by "
            f"{', '.join(dependents)}, and SQLite rebuilds the table (a view stops the "
            "rebuild, a trigger would be dropped with the old table). Save their "
            "definitions (SELECT sql FROM sqlite_master), drop them, run the upgrade "
            "again, then re-create them")


def _rebuild_sqlite(table: str, columns: set[str]) -> None:
    """SQLite's own recipe: new table, copy, drop, rename, indexes back."""
    conn = op.get_bind()
    _refuse_dependents(table)
    create = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'table' "
                                  "AND name = ?", (table,)).scalar_one()
    indexes = list(conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'index' "
                                        "AND tbl_name = ? AND sql IS NOT NULL",
                                        (table,)).scalars())
    body = create[create.index("("):]
    for column in columns:  # 0001 wrote each as: "SFJE" NUMERIC(16, 2)
        body, found = re.subn(rf'(?<=\s"{column}" )NUMERIC\(16, 2\)', "VARCHAR(19)", body)
        if found != 1:
            raise ConfigError(f"cannot migrate {table} to revision 0003: column {column} "
                              "is not the NUMERIC(16, 2) that revision 0001 created")
    names = [f'"{row[1]}"' for row in conn.exec_driver_sql(f'PRAGMA table_info("{table}")')]
    # A REAL or INTEGER as every digit it holds, two decimals like new rows; anything
    # else (NULL, text SQLite could not read as a number) as it is.
    copied = [f"CASE WHEN typeof({n}) IN ('real', 'integer') THEN printf('%.2f', {n}) "
              f"ELSE {n} END" if n.strip('"') in columns else n for n in names]
    temp = f"_exgate_0003_{table}"
    conn.exec_driver_sql(f'CREATE TABLE "{temp}" {body}')
    conn.exec_driver_sql(f'INSERT INTO "{temp}" ({", ".join(names)}) '
                         f'SELECT {", ".join(copied)} FROM "{table}"')
    conn.exec_driver_sql(f'DROP TABLE "{table}"')
    conn.exec_driver_sql(f'ALTER TABLE "{temp}" RENAME TO "{table}"')
    for sql in indexes:
        conn.exec_driver_sql(sql)


def upgrade() -> None:
    if not _sqlite():
        _amounts(_amount(16), _amount(18))
        return
    for table, _, fields in _amount_tables():
        _rebuild_sqlite(table, {f.code for f in fields})


def downgrade() -> None:
    _amounts(_amount(18), _amount(16))
