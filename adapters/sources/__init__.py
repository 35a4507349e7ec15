"""Sources: where the agent reads records from (front-end database tables, drop folders)."""
