-- The notify table as a stream: its ids are the seqs browsers see. epoch
-- names one unbroken run of those ids; it is drawn anew when the run is
-- broken (a fresh database, a restored or wiped table), so a browser that
-- presents another one is told to resync instead of being replayed rows
-- that are not the ones it missed. Rows up to pruned_through were deleted
-- by the retention; high_water is the highest id the relay has seen, by
-- which it notices a table that went back.
CREATE TABLE notify_stream (
	id integer PRIMARY KEY CHECK (id = 1),
	epoch text NOT NULL,
	pruned_through integer NOT NULL DEFAULT 0,
	high_water integer NOT NULL DEFAULT 0
);
INSERT INTO notify_stream (id, epoch)
VALUES (1, lower(hex(randomblob(8))));

-- The relay's cursor was committed before delivery; delivery now follows
-- the stream itself, and replays come from it.
DROP TABLE notify_cursor;
