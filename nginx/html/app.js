/*
 * The switchboard web client: log in or register, see who is online, call
 * by extension or from the list, answer, mute, hold, hang up, page through
 * the call history, and (admins) run the console in admin.js.
 *
 * It speaks only the public API: REST under /api/ and /protected/, the
 * WebSocket at /ws (link.js), and GET /config for the ICE servers.
 *
 * window.switchboard is the page's programmatic face: the browser tests
 * read the call's state and its WebRTC statistics through it.
 */

import { Api } from './api.js';
import { Link } from './link.js';
import { Phone } from './call.js';
import { Admin } from './admin.js';
import { audioState, ringtone, unlock } from './ring.js';

const TOKEN_KEY = 'switchboard.token';
const THEME_KEY = 'switchboard.theme';
const HEARTBEAT_MS = 30000;
const TICK_MS = 1000;
const EVENTS_KEPT = 300;
const PAGE = 10;
const LOGS_MAX = 500; /* the server's largest ?limit= */

const $ = (id) => document.getElementById(id);

const api = new Api();
const st = {
	user: null,
	config: null,
	online: new Map(), /* extension -> {username, status} */
	events: [],
	view: 'phone',
	history: { page: 0, rows: null, more: false, error: null,
	    loading: false },
	heartbeat: null,
	tick: null,
};

/* ---- notices: every error in words ---- */

let noticeTimer = null;

function notice(text, kind) {
	const n = $('notice');
	clearTimeout(noticeTimer);
	n.textContent = text || '';
	n.className = text ? kind || 'info' : '';
	/* Information fades; an error stays until the next action. */
	if (text && kind !== 'error')
		noticeTimer = setTimeout(() => notice(''), 8000);
}

/* ---- theme ---- */

function theme(name) {
	document.documentElement.dataset.theme = name;
	const b = $('theme');
	/* A toggle keeps its name; its pressed state says which theme. */
	b.setAttribute('aria-pressed', String(name === 'dark'));
}

function initialTheme() {
	let t = null;
	try {
		t = localStorage.getItem(THEME_KEY);
	} catch (e) {
		t = null;
	}
	if (t !== 'dark' && t !== 'light')
		t = window.matchMedia &&
		    window.matchMedia('(prefers-color-scheme: dark)').matches ?
		    'dark' : 'light';
	theme(t);
}

/* ---- the socket and the phone ---- */

const link = new Link(api, {
	message: receive,
	state: () => render(),
	caughtUp: (n) => notice('Back online: ' + n + ' missed event' +
	    (n === 1 ? '' : 's') + ' caught up.', 'ok'),
	ended: (text) => loggedOut(text),
});

const phone = new Phone(api, link, $('remote-audio'), {
	change: () => render(),
	notice,
	ended: () => {
		/* The relay closes the row a moment after the end. */
		loadHistory();
		setTimeout(loadHistory, 1500);
	},
});
phone.directory = (ext) => {
	const u = st.online.get(ext);
	return u ? u.username : '';
};

const admin = new Admin(api, notice, $);

function remember(m) {
	st.events.push({
		at: Date.now(),
		type: m.type,
		seq: m.seq,
		replayed: !!m.replayed,
		from: m.from,
		extension: m.extension,
		username: m.username,
		status: m.status,
		call_id: m.call_id || m.channel,
		reason: m.reason,
		error: m.error,
	});
	if (st.events.length > EVENTS_KEPT)
		st.events.splice(0, st.events.length - EVENTS_KEPT);
}

function receive(m) {
	remember(m);
	switch (m.type) {
	case 'welcome':
		/* Nothing to do: a reconnect's replay (or, when that is not
		 * possible, resync_required) brings the page up to date. */
		break;
	case 'user_status_changed':
	case 'user_status':
		presence(m);
		admin.poke();
		break;
	case 'user_deleted':
		for (const [ext, u] of st.online)
			if (u.username === m.username)
				st.online.delete(ext);
		admin.poke();
		render();
		break;
	case 'resync_required':
		/* What was missed is gone: read the present over REST. */
		refreshOnline();
		loadHistory();
		notice('Reconnected; some events were too old to replay, so ' +
		    'the page was refreshed from the server.', 'info');
		break;
	case 'error':
		notice('The server refused a message: ' + m.error +
		    (m.ref ? ' (' + m.ref + ')' : '') + '.', 'error');
		break;
	case 'call_ended':
	case 'webrtc_call_ended':
		admin.poke();
		phone.receive(m);
		break;
	default:
		phone.receive(m);
		break;
	}
}

function presence(m) {
	const ext = m.extension || m.from;
	if (!ext || (st.user && ext === st.user.extension))
		return;
	if (m.status === 'offline') {
		st.online.delete(ext);
	} else if (m.status) {
		const old = st.online.get(ext);
		st.online.set(ext, {
			username: m.username || (old && old.username) || '',
			status: m.status,
		});
	}
	render();
}

async function refreshOnline() {
	if (!st.user)
		return;
	try {
		const data = await api.get('/protected/users/online');
		st.online.clear();
		for (const u of data.users || [])
			if (u.extension !== st.user.extension)
				st.online.set(u.extension, {
					username: u.username,
					status: u.status,
				});
		render();
	} catch (e) {
		notice('Who is online could not be loaded: ' + e.message + '.',
		    'error');
	}
}

/* ---- session ---- */

async function loadConfig() {
	try {
		const data = await api.get('/config');
		st.config = data.config || {};
		const c = st.config;
		/* STUN/TURN are the server's to name (with TURN
		 * credentials); none is built into the page. */
		const ice = c.ice_servers || c.iceServers ||
		    (c.webrtc && c.webrtc.ice_servers) || [];
		phone.iceServers = Array.isArray(ice) ? ice : [];
	} catch (e) {
		phone.iceServers = [];
		notice('The server configuration could not be read (' +
		    e.message + '); calls work only on one network.', 'error');
	}
}

function start(token, user) {
	api.token = token;
	st.user = user;
	phone.me = user;
	try {
		sessionStorage.setItem(TOKEN_KEY, token);
	} catch (e) {
		/* Storage off: the session does not survive a reload. */
	}
	clearInterval(st.heartbeat);
	st.heartbeat = setInterval(() => {
		api.post('/protected/heartbeat').catch(() => {});
	}, HEARTBEAT_MS);
	link.start();
	refreshOnline();
	st.history = { page: 0, rows: null, more: false, error: null,
	    loading: false };
	loadHistory();
	route();
	focusView();
}

async function login(username, password) {
	const data = await api.post('/api/login', { username, password });
	start(data.token, data.user);
	return data.user;
}

async function register(fields) {
	await api.post('/api/register', fields);
	return login(fields.username, fields.password);
}

async function logout() {
	if (!st.user)
		return;
	if (phone.call)
		await phone.hangup();
	try {
		await api.post('/protected/logout');
	} catch (e) {
		/* Logged out here whatever the server says. */
	}
	loggedOut('');
}

function loggedOut(text) {
	if (phone.call)
		phone.finish(phone.call, 'local', 'logged out');
	clearInterval(st.heartbeat);
	st.heartbeat = null;
	link.stop();
	admin.hide();
	api.token = null;
	st.user = null;
	phone.me = null;
	st.online.clear();
	st.history.rows = null;
	try {
		sessionStorage.removeItem(TOKEN_KEY);
	} catch (e) {
		/* nothing stored */
	}
	render();
	notice(text, text ? 'error' : '');
	focusView();
}
api.onExpired = () => {
	if (st.user)
		loggedOut('Your session has ended; log in again.');
};

/* A reload keeps the session while its token is valid. */
async function resume() {
	let token = null;
	try {
		token = sessionStorage.getItem(TOKEN_KEY);
	} catch (e) {
		token = null;
	}
	if (!token)
		return;
	api.token = token;
	try {
		const data = await api.get('/protected/profile');
		start(token, data.user);
	} catch (e) {
		api.token = null;
		try {
			sessionStorage.removeItem(TOKEN_KEY);
		} catch (e2) {
			/* nothing stored */
		}
	}
}

/* ---- history ---- */

async function loadHistory() {
	if (!st.user)
		return;
	const h = st.history;
	/* The server pages by ?limit= only: ask for the pages up to this
	 * one and one row more, to know whether an older page exists. */
	const want = Math.min(LOGS_MAX, (h.page + 1) * PAGE + 1);
	h.loading = true;
	renderHistory();
	try {
		const data = await api.get('/protected/call/logs?limit=' +
		    want);
		h.rows = data.call_logs || [];
		h.more = h.rows.length > (h.page + 1) * PAGE &&
		    (h.page + 1) * PAGE < LOGS_MAX;
		h.error = null;
	} catch (e) {
		h.error = e;
	}
	h.loading = false;
	renderHistory();
}

function clock(ms) {
	const s = Math.max(0, Math.floor(ms / 1000));
	const h = Math.floor(s / 3600);
	const mm = String(Math.floor(s / 60) % 60);
	const ss = String(s % 60).padStart(2, '0');
	return h ? h + ':' + mm.padStart(2, '0') + ':' + ss : mm + ':' + ss;
}

function who(ext, name) {
	return name ? name + ' (' + ext + ')' : ext;
}

const RESULT_WORDS = {
	initiated: 'ringing',
	answered: 'in progress',
	ended: 'answered',
	missed: 'missed',
	rejected: 'rejected',
	cancelled: 'cancelled',
	failed: 'failed',
	busy: 'busy',
	'no-answer': 'no answer',
};

function renderHistory() {
	const h = st.history;
	const body = $('history').tBodies[0];
	const state = $('history-state');
	if (h.error) {
		state.textContent = h.error.unavailable ?
		    'Call history is not available on this server (' +
		    h.error.message + ').' :
		    'Call history could not be loaded: ' + h.error.message +
		    '.';
		state.className = 'error';
	} else if (h.rows === null) {
		state.textContent = 'Loading…';
		state.className = 'dim';
	} else {
		state.textContent = h.rows.length === 0 ? 'No calls yet.' :
		    h.loading ? 'Updating…' : '';
		state.className = 'dim';
	}
	const rows = (h.rows || []).slice(h.page * PAGE, (h.page + 1) * PAGE);
	body.replaceChildren(...rows.map((l) => {
		const tr = document.createElement('tr');
		tr.dataset.channel = l.channel;
		tr.dataset.status = l.status;
		tr.dataset.duration = l.duration;
		const out = st.user && l.caller_id === st.user.id;
		const other = out ? l.callee : l.caller;
		const when = new Date(l.start_time || l.created_at);
		const cells = [
			isNaN(when) ? '' : when.toLocaleString(),
			out ? 'Outgoing' : 'Incoming',
			other && other.extension ?
			    who(other.extension, other.username) : 'unknown',
			RESULT_WORDS[l.status] || l.status,
			l.status === 'ended' || l.duration > 0 ?
			    clock(l.duration * 1000) : '—',
		];
		for (const text of cells) {
			const td = document.createElement('td');
			td.textContent = text;
			tr.append(td);
		}
		tr.children[4].className = 'num';
		return tr;
	}));
	$('history-page').textContent = h.rows && h.rows.length ?
	    'Page ' + (h.page + 1) : '';
	$('history-newer').disabled = h.page === 0;
	$('history-older').disabled = !h.more;
}

/* ---- rendering ---- */

function callText() {
	const c = phone.call;
	if (c) {
		const p = who(c.peer, c.peerName);
		const via = c.kind === 'pbx' ? ' through the phone system' : '';
		switch (c.state) {
		case 'calling':
			return (c.id ? 'Ringing ' : 'Calling ') + p + via +
			    '…';
		case 'ringing':
			return 'Incoming call from ' + p + via;
		case 'connecting':
			return 'Connecting to ' + p + '…';
		case 'connected': {
			let t = 'In call with ' + p + ' — ' +
			    clock(Date.now() - c.connectedAt);
			if (c.held)
				t += ' (on hold)';
			else if (c.remoteHeld)
				t += ' (they put you on hold)';
			if (c.muted)
				t += ' (muted)';
			return t;
		}
		default:
			return c.state;
		}
	}
	const l = phone.lastCall;
	if (!l)
		return 'No call.';
	const ends = {
		local: 'you hung up',
		remote: 'they hung up',
		rejected: l.role === 'caller' ? 'they rejected it' :
		    'you rejected it',
		busy: 'they are busy on another call',
		no_answer: l.role === 'caller' ? 'no answer' : 'missed',
		missed: 'missed, they hung up before you answered',
		failed: 'it failed',
	};
	let text = 'Last call with ' + who(l.peer, l.peerName) + ': ' +
	    (ends[l.end] || l.end);
	if (typeof l.duration === 'number')
		text += ', ' + clock(l.duration * 1000);
	else if (l.connectedAt)
		text += ', ' + clock(l.endedAt - l.connectedAt);
	return text + '.';
}

function mediaText() {
	const c = phone.call;
	const s = c && c.stats;
	if (!s)
		return '';
	const kb = (b) => (b / 1024).toFixed(1) + ' kB';
	return 'Audio in ' + kb(s.inbound.bytesReceived) + ', out ' +
	    kb(s.outbound.bytesSent) + (s.pair ? ' — ' + s.pair.local +
	    ' ↔ ' + s.pair.remote : '');
}

function renderOnline() {
	const list = $('online');
	const exts = Array.from(st.online.keys()).sort();
	list.replaceChildren(...exts.map((ext) => {
		const u = st.online.get(ext);
		const li = document.createElement('li');
		li.dataset.ext = ext;
		const name = document.createElement('span');
		name.className = 'name';
		name.textContent = u.username || ext;
		const num = document.createElement('span');
		num.className = 'dim ext';
		num.textContent = ext;
		const badge = document.createElement('span');
		badge.className = 'badge ' + u.status;
		badge.textContent = u.status;
		const b = document.createElement('button');
		b.type = 'button';
		b.className = 'good small';
		b.textContent = 'Call';
		b.dataset.ext = ext;
		b.setAttribute('aria-label', 'Call ' + who(ext, u.username));
		b.disabled = !!phone.call;
		li.append(name, num, badge, b);
		return li;
	}));
	$('online-empty').hidden = exts.length > 0;
}

const LINK_WORDS = {
	connecting: 'connecting…',
	open: 'connected',
	reconnecting: 'reconnecting…',
	closed: 'offline',
};

function render() {
	const inside = !!st.user;
	$('view-login').hidden = inside;
	$('me').hidden = !inside;
	$('logout').hidden = !inside;
	$('tabs').hidden = !inside;
	for (const v of ['phone', 'history', 'admin'])
		$('view-' + v).hidden = !inside || st.view !== v;
	if (!inside)
		return;
	const isAdmin = st.user.role === 'admin';
	$('tab-admin').hidden = !isAdmin;
	for (const v of ['phone', 'history', 'admin']) {
		const t = $('tab-' + v);
		if (st.view === v)
			t.setAttribute('aria-current', 'page');
		else
			t.removeAttribute('aria-current');
	}
	$('me-name').textContent = st.user.username;
	$('me-ext').textContent = st.user.extension;
	const l = $('link');
	l.textContent = LINK_WORDS[link.state] || link.state;
	l.className = 'badge ' + (link.open ? 'online' : 'away');

	const c = phone.call;
	const state = c ? c.state : 'idle';
	$('call-panel').className = 'panel ' + state;
	$('call-status').textContent = callText();
	$('call-media').textContent = mediaText();
	$('incoming').hidden = state !== 'ringing';
	$('in-call').hidden = !c || state === 'ringing';
	const mute = $('mute');
	const hold = $('hold');
	mute.hidden = hold.hidden = !c || c.kind !== 'webrtc';
	mute.setAttribute('aria-pressed', String(!!(c && c.muted)));
	mute.textContent = c && c.muted ? 'Unmute' : 'Mute';
	hold.setAttribute('aria-pressed', String(!!(c && c.held)));
	hold.textContent = c && c.held ? 'Resume' : 'Hold';
	hold.disabled = state !== 'connected';
	mute.disabled = state !== 'connected' && state !== 'connecting';
	for (const id of ['dial', 'dial-ext', 'dial-via'])
		$(id).disabled = !!c;
	/* One call at a time: the dialler steps aside during one. */
	$('dial-form').hidden = !!c;
	renderOnline();
	keepFocus(state);

	/* While a call lives the clock and the audio figures move. */
	if (c && !st.tick) {
		st.tick = setInterval(() => {
			if (!phone.call) {
				clearInterval(st.tick);
				st.tick = null;
				return;
			}
			if (phone.call.pc)
				phone.stats().then(render, () => {});
			else
				render();
		}, TICK_MS);
	}
}

/*
 * Keyboard users keep a place: a ringing call puts the focus on Accept,
 * and a control that vanishes or is disabled under the focus hands it on
 * to what replaced it.
 */
let lastState = 'idle';

function keepFocus(state) {
	const prev = lastState;
	lastState = state;
	/* A call that rings while another view is shown brings the phone
	 * forward (route() renders again and comes back here). */
	if (state === 'ringing' && prev !== 'ringing' && st.view !== 'phone') {
		lastState = prev;
		location.hash = '#phone';
		return;
	}
	if (st.view !== 'phone')
		return;
	if (state === 'ringing' && prev !== 'ringing') {
		$('accept').focus();
		return;
	}
	const a = document.activeElement;
	const lost = !a || a === document.body || a.disabled ||
	    a.closest('[hidden]') !== null;
	if (!lost)
		return;
	if (state === 'idle')
		$('dial-ext').focus();
	else if (state !== 'ringing')
		$('hangup').focus();
}

/* ---- views ---- */

function route() {
	let v = location.hash.replace(/^#/, '') || 'phone';
	if (!['phone', 'history', 'admin'].includes(v))
		v = 'phone';
	if (v === 'admin' && (!st.user || st.user.role !== 'admin'))
		v = 'phone';
	const changed = v !== st.view;
	st.view = v;
	if (st.user && v === 'admin')
		admin.show();
	else
		admin.hide();
	if (st.user && v === 'history' && changed)
		loadHistory();
	render();
	renderHistory();
	if (changed)
		focusView();
}

function focusView() {
	if (st.user && st.view === 'phone' && phone.state === 'ringing') {
		$('accept').focus();
		return;
	}
	const h = st.user ? $(st.view + '-h') : $('login-h');
	if (h)
		h.focus();
}

/* ---- wiring ---- */

function field(id) {
	return $(id).value.trim();
}

function busy(button, promise) {
	button.disabled = true;
	return promise.finally(() => {
		button.disabled = false;
	});
}

function wire() {
	$('theme').addEventListener('click', () => {
		const next = document.documentElement.dataset.theme === 'dark' ?
		    'light' : 'dark';
		theme(next);
		try {
			localStorage.setItem(THEME_KEY, next);
		} catch (e) {
			/* kept for this page only */
		}
	});
	$('login-form').addEventListener('submit', (ev) => {
		ev.preventDefault();
		unlock();
		const u = field('login-username');
		const p = $('login-password').value;
		if (!u || !p) {
			notice('Enter your username and password.', 'error');
			(u ? $('login-password') : $('login-username')).focus();
			return;
		}
		notice('');
		busy($('login-button'), login(u, p).then(() => {
			$('login-password').value = '';
		}, (e) => {
			notice('Login failed: ' + e.message + '.', 'error');
			$('login-password').focus();
		}));
	});
	$('register-form').addEventListener('submit', (ev) => {
		ev.preventDefault();
		unlock();
		const f = {
			username: field('reg-username'),
			email: field('reg-email'),
			extension: field('reg-extension'),
			password: $('reg-password').value,
		};
		const bad = !f.username ? 'a username' : !f.email ?
		    'an email address' : !/^\d{4,6}$/.test(f.extension) ?
		    'an extension of 4 to 6 digits' : f.password.length < 6 ?
		    'a password of at least 6 characters' : null;
		if (bad) {
			notice('Registration needs ' + bad + '.', 'error');
			return;
		}
		notice('');
		busy($('register-button'), register(f).then(() => {
			$('reg-password').value = '';
			notice('Welcome, ' + f.username + ': your account is ' +
			    'ready.', 'ok');
		}, (e) => {
			notice('Registration failed: ' + e.message + '.',
			    'error');
		}));
	});
	$('logout').addEventListener('click', () => logout());
	$('dial-form').addEventListener('submit', (ev) => {
		ev.preventDefault();
		unlock();
		notice('');
		const ext = $('dial-ext').value;
		phone.dial(ext, $('dial-via').value).catch((e) => {
			notice(e.message, 'error');
			$('dial-ext').focus();
		});
	});
	$('online').addEventListener('click', (ev) => {
		const b = ev.target.closest('button[data-ext]');
		if (!b)
			return;
		unlock();
		notice('');
		phone.dial(b.dataset.ext, 'webrtc').catch((e) => notice(
		    e.message, 'error'));
	});
	const act = (fn) => () => {
		try {
			fn();
		} catch (e) {
			notice(e.message, 'error');
		}
	};
	$('accept').addEventListener('click', act(() => phone.accept()));
	$('reject').addEventListener('click', act(() => phone.reject()));
	$('hangup').addEventListener('click', () => phone.hangup());
	$('mute').addEventListener('click', act(() => phone.setMuted(
	    !(phone.call && phone.call.muted))));
	$('hold').addEventListener('click', act(() => phone.setHeld(
	    !(phone.call && phone.call.held))));
	$('history-newer').addEventListener('click', () => {
		if (st.history.page > 0) {
			st.history.page--;
			renderHistory();
		}
	});
	$('history-older').addEventListener('click', () => {
		st.history.page++;
		loadHistory();
	});
	$('history-refresh').addEventListener('click', () => loadHistory());
	window.addEventListener('hashchange', route);
	/* Browsers start audio only after a gesture: any will do. */
	document.addEventListener('pointerdown', unlock, { once: true });
	document.addEventListener('keydown', unlock, { once: true });
}

function snapshot(c) {
	if (!c)
		return null;
	return {
		id: c.id,
		kind: c.kind,
		peer: c.peer,
		peerName: c.peerName,
		role: c.role,
		state: c.state,
		muted: c.muted,
		held: c.held,
		remoteHeld: c.remoteHeld,
		startedAt: c.startedAt,
		acceptedAt: c.acceptedAt,
		connectedAt: c.connectedAt,
		connectionState: c.pc ? c.pc.connectionState : null,
	};
}

window.switchboard = {
	login,
	logout,
	dial: (ext, via) => phone.dial(ext, via || 'webrtc'),
	accept: () => phone.accept(),
	reject: () => phone.reject(),
	hangup: () => phone.hangup(),
	stats: () => phone.stats(),
	/* logged-out | idle | calling | ringing | connecting | connected */
	get state() {
		return st.user ? phone.state : 'logged-out';
	},
	get link() {
		return link.state;
	},
	get lastSeq() {
		return link.lastSeq;
	},
	get user() {
		return st.user ? Object.assign({}, st.user) : null;
	},
	get online() {
		return Array.from(st.online, ([extension, u]) => ({ extension,
		    username: u.username, status: u.status }));
	},
	get current() {
		return snapshot(phone.call);
	},
	get lastCall() {
		return phone.lastCall ? Object.assign({}, phone.lastCall) :
		    null;
	},
	get events() {
		return st.events.slice();
	},
	get counts() {
		return JSON.parse(JSON.stringify(link.counts));
	},
	get ringing() {
		return ringtone.playing;
	},
	/* Whether the ringtone is audible: WebAudio running. */
	get audio() {
		return audioState();
	},
	get iceServers() {
		return phone.iceServers.slice();
	},
};

initialTheme();
wire();
render();
renderHistory();
loadConfig().then(resume);
