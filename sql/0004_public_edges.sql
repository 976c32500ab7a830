-- Registrations by client address, for the per-address limit of
-- POST /api/register: each one costs a password hash.
CREATE TABLE register_attempts (
	id integer PRIMARY KEY AUTOINCREMENT,
	addr text NOT NULL,
	at integer NOT NULL -- unix seconds
);
CREATE INDEX register_attempts_addr ON register_attempts (addr, at);

-- Usernames and emails are unique whatever their (ASCII) case: the write
-- transaction that creates or renames an account checks it, and these
-- keep that check from reading every row. Not UNIQUE, so a database that
-- already holds "Bob" and "bob" still migrates.
CREATE INDEX users_username_nocase ON users (username COLLATE NOCASE);
CREATE INDEX users_email_nocase ON users (email COLLATE NOCASE);
