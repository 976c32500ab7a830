-- Users, calls and the voip-application columns they are read with.
-- Times are text, RFC 3339 in UTC with microseconds ("...T...Z").
CREATE TABLE users (
	id integer PRIMARY KEY AUTOINCREMENT,
	username text NOT NULL,
	email text NOT NULL,
	password text NOT NULL,
	extension text NOT NULL,
	status text DEFAULT 'offline',
	role text DEFAULT 'user',
	created_at datetime,
	updated_at datetime,
	is_online numeric DEFAULT false,
	last_login datetime,
	last_seen datetime,
	CONSTRAINT uni_users_username UNIQUE (username),
	CONSTRAINT uni_users_email UNIQUE (email),
	CONSTRAINT uni_users_extension UNIQUE (extension)
);

CREATE TABLE call_logs (
	id integer PRIMARY KEY AUTOINCREMENT,
	caller_id integer,
	callee_id integer,
	start_time datetime,
	end_time datetime,
	duration integer,
	status text,
	channel text,
	direction text,
	created_at datetime,
	answer_time datetime,
	FOREIGN KEY (callee_id) REFERENCES users(id) ON DELETE SET NULL,
	FOREIGN KEY (caller_id) REFERENCES users(id) ON DELETE SET NULL
);
CREATE INDEX call_logs_caller ON call_logs (caller_id, created_at);
CREATE INDEX call_logs_callee ON call_logs (callee_id, created_at);
CREATE INDEX call_logs_channel ON call_logs (channel);

CREATE TABLE active_calls (
	id integer PRIMARY KEY AUTOINCREMENT,
	caller_id integer,
	callee_id integer,
	channel text,
	status text,
	start_time datetime,
	created_at datetime,
	FOREIGN KEY (caller_id) REFERENCES users(id) ON DELETE CASCADE,
	FOREIGN KEY (callee_id) REFERENCES users(id) ON DELETE CASCADE
);

-- A user's tokens carry the generation they were issued at; bumping it
-- revokes them all at once (logout, deletion, role change).
CREATE TABLE token_generations (
	user_id integer PRIMARY KEY,
	generation integer NOT NULL DEFAULT 0,
	revoked_at datetime
);

-- Failed logins, by username and by client address, for throttling that
-- holds across FastCGI workers.
CREATE TABLE login_attempts (
	id integer PRIMARY KEY AUTOINCREMENT,
	username text NOT NULL,
	addr text NOT NULL,
	at integer NOT NULL -- unix seconds
);
CREATE INDEX login_attempts_username ON login_attempts (username, at);
CREATE INDEX login_attempts_addr ON login_attempts (addr, at);

-- Events for browsers, written in the transaction of the change that caused
-- them and delivered by the relay in id order.
CREATE TABLE notify (
	id integer PRIMARY KEY AUTOINCREMENT,
	created_at datetime NOT NULL,
	target_kind text NOT NULL
	    CHECK (target_kind IN ('user', 'extension', 'role', 'all')),
	target_value text NOT NULL DEFAULT '',
	payload text NOT NULL
);

-- How far each consumer of notify has delivered.
CREATE TABLE notify_cursor (
	consumer text PRIMARY KEY,
	last_id integer NOT NULL
);

CREATE TABLE audit_log (
	id integer PRIMARY KEY AUTOINCREMENT,
	at datetime NOT NULL,
	actor_id integer,   -- NULL: the system or the command-line tool
	action text NOT NULL,
	target text,
	details text        -- JSON
);
CREATE INDEX audit_log_at ON audit_log (at);
