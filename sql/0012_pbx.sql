-- Calls through Asterisk (AMI). The SQL is the subset SQLite and
-- PostgreSQL read alike: no AUTOINCREMENT, times as db_now text.

-- Why a call ended, as Asterisk said it (the Hangup event's Cause and
-- Cause-txt, or the OriginateResponse's Reason when no channel came up).
ALTER TABLE call_logs ADD COLUMN hangup_cause integer;
ALTER TABLE call_logs ADD COLUMN hangup_cause_txt text;

-- One row per Cdr event (cdr_manager), its fields as sent. A channel
-- can have several CDRs (one per dial attempt), so there is no key of
-- Asterisk's to make unique; call_log_id links the ones of our calls.
CREATE TABLE cdr (
	call_log_id integer REFERENCES call_logs(id) ON DELETE SET NULL,
	account_code text,
	source text,
	destination text,
	destination_context text,
	caller_id text,
	channel text,
	destination_channel text,
	last_application text,
	last_data text,
	start_time text,
	answer_time text,
	end_time text,
	duration integer,
	billable_seconds integer,
	disposition text,
	ama_flags text,
	unique_id text,
	user_field text,
	received_at text NOT NULL
);
CREATE INDEX cdr_unique_id ON cdr (unique_id);
CREATE INDEX cdr_call_log ON cdr (call_log_id);
CREATE INDEX active_calls_channel ON active_calls (channel);
