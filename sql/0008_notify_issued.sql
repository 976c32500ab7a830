-- The notify ids are drawn from the stream row (issued) by the writer
-- that inserts the row, instead of by AUTOINCREMENT, so that both engines
-- hand them out alike: without gaps (a rolled back insert gives its id
-- back) and in commit order (writers are serialized). issued starts at
-- the highest id AUTOINCREMENT ever gave.
ALTER TABLE notify_stream ADD COLUMN issued integer NOT NULL DEFAULT 0;
UPDATE notify_stream SET issued = max(
    COALESCE((SELECT max(id) FROM notify), 0),
    COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'notify'), 0));
