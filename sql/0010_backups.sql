-- Backups the admin area and `switchboard backup` take: one row each,
-- so their state survives the program that took them and is the same for
-- every worker. The file is path, inside the backup directory.
CREATE TABLE backups (
	id text PRIMARY KEY,          -- backup_<unix seconds>[_n]
	name text NOT NULL,
	status text NOT NULL          -- creating, completed, failed, restoring
	    CHECK (status IN ('creating', 'completed', 'failed', 'restoring')),
	progress integer NOT NULL DEFAULT 0,
	message text NOT NULL DEFAULT '',
	error text,
	path text NOT NULL,
	size integer NOT NULL DEFAULT 0,
	description text NOT NULL DEFAULT '',
	created_by integer,           -- NULL: the command-line tool
	created_at text NOT NULL,     -- the db_now form, as every time
	completed_at text
);
CREATE INDEX backups_created ON backups (created_at);

-- Stats count today's calls and exports and deletes select by date.
CREATE INDEX call_logs_created ON call_logs (created_at);
