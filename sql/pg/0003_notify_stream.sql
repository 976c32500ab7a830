-- PostgreSQL's 0003_notify_stream: the epoch drawn with md5(random())
-- instead of SQLite's randomblob (16 hex digits either way).
CREATE TABLE notify_stream (
	id integer PRIMARY KEY CHECK (id = 1),
	epoch text NOT NULL,
	pruned_through bigint NOT NULL DEFAULT 0,
	high_water bigint NOT NULL DEFAULT 0
);
INSERT INTO notify_stream (id, epoch)
VALUES (1, substr(md5(random()::text || clock_timestamp()::text), 1, 16));

DROP TABLE notify_cursor;
