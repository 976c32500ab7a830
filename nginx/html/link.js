/*
 * The one WebSocket to the relay. It is opened with a single-use ticket
 * (POST /protected/ws-ticket), so the token never sits in a URL a proxy
 * might log. The relay numbers the events of its durable stream (seq,
 * within an epoch named in the welcome); after any loss the socket comes
 * back with ?since=<last seq seen>&epoch=<epoch> and the relay replays
 * what was missed, or says resync_required when it cannot.
 */

/* Waits before each reconnect attempt; the last repeats. */
const BACKOFF_MS = [500, 1000, 2000, 4000, 8000];
/* The relay closes with these: token expired, session revoked. */
const CLOSE_EXPIRED = 4001;
const CLOSE_REVOKED = 4003;

export class Link {
	/*
	 * api: an Api; on: {message(m), state(s), caughtUp(n), ended(words)}.
	 * state is one of 'connecting', 'open', 'reconnecting', 'closed'.
	 */
	constructor(api, on) {
		this.api = api;
		this.on = on;
		this.ws = null;
		this.state = 'closed';
		this.epoch = null;
		this.lastSeq = 0;
		this.attempt = 0;
		this.timer = null;
		this.outbox = [];
		this.wanted = false;
		/* Replayed events are those at or below the welcome's last_seq
		 * when the socket came back. */
		this.replayThrough = 0;
		this.caughtUp = 0;
		this.reconnects = 0;
		this.counts = { sent: {}, received: {} };
	}

	start() {
		this.wanted = true;
		this.epoch = null;
		this.lastSeq = 0;
		this.connect();
	}

	stop() {
		this.wanted = false;
		clearTimeout(this.timer);
		this.timer = null;
		this.outbox = [];
		const ws = this.ws;
		this.ws = null;
		if (ws)
			ws.close(1000);
		this.set('closed');
	}

	set(state) {
		if (this.state === state)
			return;
		this.state = state;
		this.on.state(state);
	}

	get open() {
		return this.state === 'open';
	}

	async connect() {
		if (!this.wanted || this.ws)
			return;
		this.set(this.epoch === null && this.reconnects === 0 ?
		    'connecting' : 'reconnecting');
		let ticket;
		try {
			const t = await this.api.post('/protected/ws-ticket');
			ticket = t.ticket;
		} catch (e) {
			if (e.status === 401 || e.status === 403) {
				this.wanted = false;
				this.on.ended('Your session has ended; log ' +
				    'in again.');
				return;
			}
			this.later();
			return;
		}
		if (!this.wanted || this.ws)
			return;
		const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
		let url = proto + '//' + location.host + '/ws?ticket=' +
		    encodeURIComponent(ticket);
		if (this.epoch !== null)
			url += '&since=' + this.lastSeq + '&epoch=' +
			    encodeURIComponent(this.epoch);
		let ws;
		try {
			ws = new WebSocket(url);
		} catch (e) {
			this.later();
			return;
		}
		this.ws = ws;
		ws.onmessage = (ev) => {
			if (this.ws !== ws)
				return;
			let m;
			try {
				m = JSON.parse(ev.data);
			} catch (e) {
				return;
			}
			if (m && typeof m === 'object')
				this.receive(m);
		};
		ws.onclose = (ev) => {
			if (this.ws !== ws)
				return;
			this.ws = null;
			if (ev.code === CLOSE_REVOKED ||
			    ev.code === CLOSE_EXPIRED) {
				this.wanted = false;
				this.set('closed');
				this.on.ended(ev.code === CLOSE_REVOKED ?
				    'Your session has ended; log in again.' :
				    'Your session has expired; log in again.');
				return;
			}
			this.later();
		};
	}

	later() {
		if (!this.wanted)
			return;
		this.set('reconnecting');
		const wait = BACKOFF_MS[Math.min(this.attempt,
		    BACKOFF_MS.length - 1)];
		this.attempt++;
		clearTimeout(this.timer);
		/* Jitter: many browsers losing one relay do not come back in
		 * step. */
		this.timer = setTimeout(() => {
			this.timer = null;
			this.connect();
		}, wait * (0.75 + Math.random() / 2));
	}

	receive(m) {
		const t = m.type;
		this.counts.received[t] = (this.counts.received[t] || 0) + 1;
		if (t === 'welcome') {
			const back = this.epoch !== null;
			/* A first start follows the stream from here; a
			 * reconnect keeps its place until the replay is in. */
			if (!back) {
				this.epoch = m.epoch;
				this.lastSeq = m.last_seq || 0;
			} else {
				this.reconnects++;
				this.caughtUp = 0;
			}
			this.replayThrough = back ? m.last_seq || 0 : 0;
			this.attempt = 0;
			this.set('open');
			const queued = this.outbox;
			this.outbox = [];
			queued.forEach((q) => this.send(q));
		} else if (t === 'resync_required') {
			/* What was missed is gone: start again from now. */
			this.epoch = m.epoch;
			this.lastSeq = m.last_seq || 0;
			this.replayThrough = 0;
		}
		if (typeof m.seq === 'number') {
			if (m.seq <= this.lastSeq)
				return; /* seen already */
			this.lastSeq = m.seq;
			if (m.seq <= this.replayThrough) {
				this.caughtUp++;
				m.replayed = true;
				this.on.caughtUp(this.caughtUp);
			}
		}
		this.on.message(m);
	}

	/* Signalling sent while the socket is down goes out once it is
	 * back. */
	send(msg) {
		if (!this.ws || this.state !== 'open') {
			this.outbox.push(msg);
			return false;
		}
		this.ws.send(JSON.stringify(msg));
		const t = msg.type;
		this.counts.sent[t] = (this.counts.sent[t] || 0) + 1;
		return true;
	}
}
