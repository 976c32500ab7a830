#ifndef LIB_CALLLOG_H
#define LIB_CALLLOG_H

#include <stdint.h>

struct db;
struct err;

/*
 * The life of a WebRTC call's call_logs row after the calls program writes
 * it as 'initiated' (ringing): answered, then ended; or, still ringing,
 * cancelled, rejected, missed or failed. The REST programs and the relay
 * both move it, each step one UPDATE guarded by the status it leaves, so
 * whichever comes second changes nothing and a closed row stays closed.
 * Times are unix microseconds, stored in the db_now form.
 */

/* How a call ends: what its row becomes. */
enum calllog_end {
	CALLLOG_HANGUP, /* answered: ended with duration; ringing: cancelled */
	CALLLOG_REJECTED, /* answered: ended with duration; ringing: rejected */
	CALLLOG_MISSED,   /* ringing: missed; an answered row is left alone */
	CALLLOG_FAILED,   /* ringing: failed; an answered row is left alone */
};

/* The newest row of a channel, as the callers match it to its parties. */
struct calllog_row {
	int64_t id, caller_id, callee_id;
	char status[16];
};

/*
 * The newest row whose channel is channel into *row: 1, or 0 when there is
 * none (*row untouched), -1 on error.
 */
int calllog_find(struct db *db, const char *channel, struct calllog_row *row,
    struct err *e);

/*
 * Row id, ringing, is answered at at_us (status answered, answer_time).
 * 1 when it was; 0 when it changed nothing (closed meanwhile, already
 * answered, or no such row); -1 on error, nothing written.
 */
int calllog_answer(struct db *db, int64_t id, int64_t at_us, struct err *e);

/*
 * Close row id as `how` says, with end_time at_us. An answered call's
 * duration is the whole seconds from its answer_time to at_us (0 when
 * at_us is not later); a ringing one's is 0. 1 when the row changed; 0
 * when it was already closed (or `how` leaves it alone, or there is no
 * such row). *duration (may be NULL) gets the duration the row holds
 * afterwards either way (0 when there is no row). -1 on error, nothing
 * written.
 */
int calllog_close(struct db *db, int64_t id, enum calllog_end how,
    int64_t at_us, int64_t *duration, struct err *e);

/*
 * Every WebRTC row (channel webrtc-call-...) still ringing that started at
 * or before before_us is closed as missed at at_us: the ring timers that
 * would have closed them died with a relay. -1 on error, nothing written.
 */
int calllog_miss_stale(struct db *db, int64_t before_us, int64_t at_us,
    struct err *e);

#endif
