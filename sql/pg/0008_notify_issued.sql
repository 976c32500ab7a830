-- PostgreSQL's 0008_notify_issued: the column, from the highest id (no
-- sqlite_sequence here; the ids were never drawn from a sequence).
ALTER TABLE notify_stream ADD COLUMN issued bigint NOT NULL DEFAULT 0;
UPDATE notify_stream
SET issued = (SELECT COALESCE(max(id), 0) FROM notify);
