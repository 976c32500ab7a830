-- Runtime settings written by POST /config/update. The programs are
-- stateless, so what upstream kept in memory lives here and is applied over
-- the environment's configuration when /config is rendered.
CREATE TABLE settings (
	key text PRIMARY KEY,
	value text NOT NULL,
	updated_at datetime
);
