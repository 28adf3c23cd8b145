"""db/init.sql is generated from the schema; it stays equal and really runs."""

from __future__ import annotations

from pathlib import Path

from chatroom.storage.initsql import render_init_sql

from wire import WireClient

ROOT = Path(__file__).resolve().parents[1]


def test_init_sql_is_generated_from_schema():
    assert (ROOT / "db" / "init.sql").read_text() == render_init_sql(), (
        "db/init.sql is stale: run `chatroom schema > db/init.sql`"
    )


def test_init_sql_avoids_mysql_only_or_mariadb_only_syntax():
    sql = render_init_sql()
    for forbidden in ("->>", " AS new", "utf8mb4_0900_ai_ci", "IF NOT EXISTS"):
        assert forbidden not in sql


def test_services_run_on_a_database_created_by_init_sql(make_stack, mysql_url):
    import pymysql
    from sqlalchemy.engine import make_url

    parsed = make_url(mysql_url)
    conn = pymysql.connect(
        host=parsed.host,
        port=parsed.port,
        user=parsed.username,
        password=parsed.password,
        database=parsed.database,
        charset="utf8mb4",
        client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS,
    )
    with conn.cursor() as cur:
        cur.execute((ROOT / "db" / "init.sql").read_text())
        while cur.nextset():
            pass
    conn.commit()
    conn.close()
    stack = make_stack(mysql_url)
    with WireClient(stack.port) as c:
        c.register_and_login("schema-user")
        c.call("room.send", room="lobby", text="init.sql works")
