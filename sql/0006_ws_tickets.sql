-- Single-use tickets for the WebSocket upgrade: a browser trades its token
-- for one over REST and puts the ticket, not the token, in /ws?ticket=,
-- so what proxies and servers log of the URL is worthless seconds later.
-- A ticket carries the generation and expiry of the token it came from:
-- revoking that token's user refuses the ticket too.
CREATE TABLE ws_tickets (
	ticket text PRIMARY KEY,
	user_id integer NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	generation integer NOT NULL,
	token_exp integer NOT NULL,  -- unix seconds; the socket ends then
	expires_at integer NOT NULL  -- unix seconds; unused after this
);
CREATE INDEX ws_tickets_user ON ws_tickets (user_id, expires_at);
CREATE INDEX ws_tickets_expiry ON ws_tickets (expires_at);
