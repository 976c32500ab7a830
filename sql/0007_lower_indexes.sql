-- Usernames and emails are compared as lower(column) = lower(?), which
-- both engines read the same way (COLLATE NOCASE is SQLite's own), so the
-- indexes that keep that check from reading every row are on lower().
-- ASCII case, as NOCASE was.
DROP INDEX IF EXISTS users_username_nocase;
DROP INDEX IF EXISTS users_email_nocase;
CREATE INDEX users_username_lower ON users (lower(username));
CREATE INDEX users_email_lower ON users (lower(email));
