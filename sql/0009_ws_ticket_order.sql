-- Which of a user's tickets are the newest (the per-user bound keeps
-- those): SQLite's rowid said it, which PostgreSQL has no equivalent of.
-- Unix microseconds of the issue; 0 for tickets issued before this.
ALTER TABLE ws_tickets ADD COLUMN issued_us bigint NOT NULL DEFAULT 0;
