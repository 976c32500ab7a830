#ifndef LIB_AMI_H
#define LIB_AMI_H

#include <stdbool.h>
#include <stddef.h>

struct err;

/*
 * The Asterisk Manager Interface wire codec: bytes in, messages out, and
 * actions built into a caller's buffer. No sockets, no allocation per
 * message.
 *
 * On the wire every line ends with CRLF and a message ends with an empty
 * line, except the banner ("Asterisk Call Manager/11.0.0\r\n"), one line
 * with no empty line after it. A bare LF is accepted as a line end too.
 */

#define AMI_MSG_MAX_DEFAULT     (64 * 1024) /* bytes of one message */
#define AMI_HEADERS_MAX_DEFAULT 256         /* header lines of one message */
#define AMI_BANNER_PREFIX       "Asterisk Call Manager/"

enum ami_kind {
	AMI_BANNER,   /* name is the whole line; no headers */
	AMI_RESPONSE, /* name is the value of Response: (Success, Error, ...) */
	AMI_EVENT,    /* name is the value of Event: */
};

/* Where a message stands in a list action's answer (CoreShowChannels,
 * QueueStatus, Status, ...): the Response carries "EventList: start", the
 * items are events carrying the action's ActionID, the last event carries
 * "EventList: Complete". */
enum ami_list {
	AMI_LIST_NONE,
	AMI_LIST_START,    /* a response with EventList: start */
	AMI_LIST_COMPLETE, /* an event with EventList: Complete */
};

struct ami_header {
	const char *name;  /* NUL-terminated, as sent */
	const char *value; /* NUL-terminated, blanks after the colon removed */
	size_t name_len, value_len;
};

/*
 * One parsed message. Every pointer points into the parser's buffer and
 * stays valid until the next ami_parse_feed, ami_parser_reset or
 * ami_parser_free on that parser.
 */
struct ami_msg {
	enum ami_kind kind;
	const char *name;      /* see enum ami_kind; never NULL */
	const char *action_id; /* ActionID's value, NULL when absent */
	enum ami_list list;
	const struct ami_header *headers; /* in wire order */
	size_t nheaders;
};

struct ami_parser;

/*
 * A parser holding at most msg_max bytes and header_max headers per message
 * (0 for either: the default). NULL with e set when out of memory. It
 * expects the banner first, but recognises a banner line at any message
 * boundary, so one parser may follow a reconnected stream.
 */
struct ami_parser *ami_parser_new(size_t msg_max, size_t header_max,
    struct err *e);

/* Free the parser; NULL is a no-op. */
void ami_parser_free(struct ami_parser *p);

/* Drop every buffered byte and any skip in progress (a new connection). */
void ami_parser_reset(struct ami_parser *p);

/*
 * Take bytes from buf (any split: half a line, several messages). Returns
 * how many it took: fewer than len only when the buffer is full, and then
 * ami_parse_next frees room (it cannot return 0 with a full buffer), so
 *
 *	while (len > 0) {
 *		n = ami_parse_feed(p, buf, len); buf += n; len -= n;
 *		while ((rc = ami_parse_next(p, &m, &e)) != 0) ...
 *	}
 *
 * always makes progress. Invalidates the messages returned before.
 */
size_t ami_parse_feed(struct ami_parser *p, const char *buf, size_t len);

/*
 * The next complete message: 1 with *m filled; 0 when more bytes are
 * needed; -1 when a message was skipped, with e saying why: ERR_TOO_LARGE
 * (over msg_max bytes or header_max headers: the rest of it, up to its
 * empty line, is dropped as it arrives) or ERR_INVALID (a line without a
 * colon, a NUL byte, a message that is neither a response nor an event).
 * After -1 parsing goes on with the next message; nothing a peer sends
 * makes the parser hold more than msg_max bytes.
 */
int ami_parse_next(struct ami_parser *p, struct ami_msg *m, struct err *e);

/* The value of the first header called name (ASCII case-insensitive), or
 * NULL. */
const char *ami_msg_get(const struct ami_msg *m, const char *name);

/*
 * An action under construction in a caller's buffer:
 *
 *	char buf[1024];
 *	struct ami_action a = { buf, sizeof(buf), 0 };
 *	ami_action_begin(&a, "Ping", "7", e) ||
 *	    ami_action_add(&a, "Events", "call,cdr", e) ||
 *	    ami_action_end(&a, e);
 *
 * then buf holds a.len bytes. Every call returns 0, or -1 with e set and
 * a.len as it was before the call: ERR_INVALID (field: the header's name)
 * for a name that is empty or holds anything but letters, digits and
 * "-_()/.", or a value holding CR or LF, which could otherwise end the
 * header early and inject another; ERR_TOO_LARGE when the buffer is full.
 */
struct ami_action {
	char *buf;
	size_t size;
	size_t len;
};

/* "Action: <action>\r\n" then "ActionID: <id>\r\n" when id is not NULL;
 * restarts a.len at 0. */
int ami_action_begin(struct ami_action *a, const char *action,
    const char *action_id, struct err *e);

/* "<name>: <value>\r\n". */
int ami_action_add(struct ami_action *a, const char *name, const char *value,
    struct err *e);

/* The empty line that ends the action. */
int ami_action_end(struct ami_action *a, struct err *e);

#endif
