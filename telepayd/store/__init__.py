"""PostgreSQL: the pool, the schema migrations and the queries, grouped by table. All SQL lives here."""
