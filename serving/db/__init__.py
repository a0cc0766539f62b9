"""The cases database: tables, the engine and its migrations."""
