-- Several relays on one database (PostgreSQL; on SQLite the tables stay
-- empty). Each running relay has a row, its heartbeat kept fresh; one
-- not heard of for a while is dead and is deleted with its counts.
CREATE TABLE relay_instances (
	id text PRIMARY KEY,           -- drawn at each start
	node text NOT NULL,            -- host and run directory: a restarted
	                               -- relay replaces its predecessor's row
	started_at integer NOT NULL,   -- unix seconds
	seen_at integer NOT NULL       -- unix seconds: the heartbeat
);

-- How many sockets each relay holds of a user: the user is online while
-- a live relay holds one.
CREATE TABLE relay_sockets (
	relay_id text NOT NULL REFERENCES relay_instances(id) ON DELETE CASCADE,
	user_id integer NOT NULL,
	sockets integer NOT NULL,
	PRIMARY KEY (relay_id, user_id)
);
CREATE INDEX relay_sockets_user ON relay_sockets (user_id);

-- Messages outside the event stream (call invitations, WebRTC signalling)
-- for a user whose sockets may be on another relay: delivered live by
-- every relay past its own cursor, never replayed, kept a minute.
CREATE TABLE relay_mail (
	id integer PRIMARY KEY AUTOINCREMENT,
	created_at integer NOT NULL,   -- unix seconds
	origin text NOT NULL,          -- the relay that wrote it
	user_id integer NOT NULL,
	payload text NOT NULL          -- a JSON object
);
CREATE INDEX relay_mail_created ON relay_mail (created_at);
