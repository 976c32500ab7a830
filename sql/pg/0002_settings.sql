-- PostgreSQL's 0002_settings: a text time instead of SQLite's datetime.
CREATE TABLE settings (
	key text PRIMARY KEY,
	value text NOT NULL,
	updated_at text
);
