-- The case-insensitive uniqueness check on usernames and emails compares
-- lower() of both sides, which SQLite and PostgreSQL read alike (ASCII
-- case, as NOCASE did): these indexes serve it instead of the NOCASE ones.
CREATE INDEX users_username_lower ON users (lower(username));
CREATE INDEX users_email_lower ON users (lower(email));
DROP INDEX IF EXISTS users_username_nocase;
DROP INDEX IF EXISTS users_email_nocase;
