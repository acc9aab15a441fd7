"""Storage: the schema, the engine, migrations, and one module of SQL per noun. It runs SQL and maps rows;
it decides nothing."""
