/*
 * A small web phone for switchboard. It logs in over REST, keeps one
 * WebSocket to the relay for presence and call signalling, and places
 * browser-to-browser (WebRTC) audio calls by extension.
 *
 * Call flow (the voip-application frontend's, contract §1.7):
 *   caller: POST /protected/call/initiate?method=webrtc
 *   callee: gets webrtc_call_invitation, sends webrtc_call_accepted
 *   caller: sends webrtc_offer; callee: webrtc_answer;
 *   both:   trickle webrtc_ice_candidate
 *   either: webrtc_call_ended, then POST /protected/call/hangup
 *
 * window.phone is the programmatic face of the same page (browser tests
 * drive it; so can a console user).
 */
'use strict';

(function () {
	/*
	 * No STUN or TURN: host candidates are enough on one machine or one
	 * LAN. A deployment whose users sit behind different NATs lists its
	 * servers here.
	 */
	const ICE_SERVERS = [];
	const HEARTBEAT_MS = 30000;
	const STATS_MS = 1000;
	/* Accepted but no audio path by then: no route between the two. */
	const CONNECT_MS = 20000;
	const RECONNECT_MS = [1000, 2000, 5000, 10000];
	const EVENTS_KEPT = 300;
	const LOGS_SHOWN = 10;
	const TOKEN_KEY = 'switchboard.phone.token';
	/* The relay closes with these when the token has expired or the
	 * session was revoked (logout elsewhere, deletion, role change). */
	const CLOSE_EXPIRED = 4001;
	const CLOSE_REVOKED = 4003;

	const st = {
		token: null,
		user: null,
		ws: null,
		wsOpen: false,
		outbox: [],
		lastSeq: 0,
		epoch: null,
		retries: 0,
		retryTimer: null,
		heartbeat: null,
		online: new Map(), /* extension -> {username, status} */
		events: [],
		counts: { sent: {}, received: {} },
		call: null,
		lastCall: null,
		logs: null, /* recent CallLogs; null while the server has none */
		tick: null,
		message: '',
		messageKind: '',
	};

	function $(id) {
		return document.getElementById(id);
	}

	function note(text, kind) {
		st.message = text;
		st.messageKind = kind || 'info';
		render();
	}

	function bump(table, type) {
		table[type] = (table[type] || 0) + 1;
	}

	/* ---- REST ---- */

	async function api(method, path, body) {
		const headers = {};
		if (body !== undefined)
			headers['Content-Type'] = 'application/json';
		if (st.token)
			headers.Authorization = 'Bearer ' + st.token;
		const r = await fetch(path, {
			method: method,
			headers: headers,
			body: body === undefined ? undefined : JSON.stringify(body),
			cache: 'no-store',
		});
		let data = null;
		try {
			data = await r.json();
		} catch (e) {
			data = null;
		}
		if (!r.ok) {
			const err = new Error((data && (data.error || data.message)) ||
			    'HTTP ' + r.status);
			err.status = r.status;
			if (r.status === 401 && st.token &&
			    path.startsWith('/protected/'))
				loggedOut('Your session has ended; log in again.');
			throw err;
		}
		return data;
	}

	/* ---- session ---- */

	async function login(username, password) {
		if (st.token)
			await logout();
		const data = await api('POST', '/api/login',
		    { username: username, password: password });
		start(data.token, data.user);
		return data.user;
	}

	function start(token, user) {
		st.token = token;
		st.user = user;
		st.lastSeq = 0;
		st.epoch = null;
		st.message = '';
		try {
			sessionStorage.setItem(TOKEN_KEY, token);
		} catch (e) {
			/* Storage off: the session just does not survive a reload. */
		}
		clearInterval(st.heartbeat);
		st.heartbeat = setInterval(function () {
			api('POST', '/protected/heartbeat').catch(function () {});
		}, HEARTBEAT_MS);
		connect();
		refreshLogs();
		render();
	}

	async function logout() {
		if (!st.token)
			return;
		if (st.call)
			await hangup();
		try {
			await api('POST', '/protected/logout');
		} catch (e) {
			/* Logged out here whatever the server says. */
		}
		loggedOut('');
	}

	function loggedOut(message) {
		if (st.call)
			finish(st.call, 'local', 'logged out');
		clearInterval(st.heartbeat);
		clearTimeout(st.retryTimer);
		st.heartbeat = st.retryTimer = null;
		const ws = st.ws;
		st.ws = null;
		st.wsOpen = false;
		if (ws)
			ws.close(1000);
		st.token = st.user = null;
		st.outbox = [];
		st.online.clear();
		st.logs = null;
		try {
			sessionStorage.removeItem(TOKEN_KEY);
		} catch (e) {
			/* nothing stored */
		}
		note(message, message ? 'error' : '');
	}

	/* A reload keeps the session while its token is valid. */
	async function resume() {
		let token = null;
		try {
			token = sessionStorage.getItem(TOKEN_KEY);
		} catch (e) {
			return;
		}
		if (!token)
			return;
		st.token = token;
		try {
			const data = await api('GET', '/protected/profile');
			start(token, data.user);
		} catch (e) {
			loggedOut('');
		}
	}

	/* ---- WebSocket ---- */

	/*
	 * The socket is opened with a single-use ticket, so the token never
	 * appears in a URL that a proxy or server might log.
	 */
	async function connect() {
		const proto = location.protocol === 'https:' ? 'wss' : 'ws';
		let ticket;
		try {
			ticket = (await api('POST', '/protected/ws-ticket')).ticket;
		} catch (e) {
			if (st.token)
				retryLater();
			return;
		}
		if (!st.token || st.ws)
			return;
		let url = proto + '://' + location.host + '/ws?ticket=' +
		    encodeURIComponent(ticket);
		/* Events missed while away are replayed after this seq. */
		if (st.epoch !== null)
			url += '&since=' + st.lastSeq + '&epoch=' +
			    encodeURIComponent(st.epoch);
		const ws = new WebSocket(url);
		st.ws = ws;
		ws.onopen = function () {
			if (st.ws !== ws)
				return;
			st.wsOpen = true;
			st.retries = 0;
			const queued = st.outbox;
			st.outbox = [];
			queued.forEach(send);
			refreshOnline();
			render();
		};
		ws.onmessage = function (ev) {
			let m;
			try {
				m = JSON.parse(ev.data);
			} catch (e) {
				return;
			}
			if (st.ws === ws && m && typeof m === 'object')
				receive(m);
		};
		ws.onclose = function (ev) {
			if (st.ws !== ws)
				return;
			st.ws = null;
			st.wsOpen = false;
			if (ev.code === CLOSE_REVOKED) {
				loggedOut('Your session has ended; log in again.');
				return;
			}
			if (ev.code === CLOSE_EXPIRED) {
				loggedOut('Your session has expired; log in again.');
				return;
			}
			retryLater();
		};
	}

	function retryLater() {
		const wait = RECONNECT_MS[Math.min(st.retries,
		    RECONNECT_MS.length - 1)];
		st.retries++;
		clearTimeout(st.retryTimer);
		st.retryTimer = setTimeout(function () {
			if (st.token && !st.ws)
				connect();
		}, wait);
		render();
	}

	/* Signalling sent while the socket is down goes out once it is back. */
	function send(msg) {
		if (!st.ws || !st.wsOpen) {
			st.outbox.push(msg);
			return false;
		}
		st.ws.send(JSON.stringify(msg));
		bump(st.counts.sent, msg.type);
		return true;
	}

	function remember(m) {
		st.events.push({
			at: Date.now(),
			type: m.type,
			seq: m.seq,
			from: m.from,
			extension: m.extension,
			status: m.status,
			call_id: m.call_id || m.channel,
			reason: m.reason,
			error: m.error,
		});
		if (st.events.length > EVENTS_KEPT)
			st.events.splice(0, st.events.length - EVENTS_KEPT);
	}

	function receive(m) {
		if (typeof m.seq === 'number' && m.seq > st.lastSeq)
			st.lastSeq = m.seq;
		bump(st.counts.received, m.type);
		remember(m);
		switch (m.type) {
		case 'user_status_changed':
		case 'user_status':
			presence(m);
			break;
		case 'user_deleted':
			for (const [ext, u] of st.online)
				if (u.username === m.username)
					st.online.delete(ext);
			render();
			break;
		case 'welcome':
			/* A fresh start: the stream from here on. A reconnect
			 * keeps its own place until the replay has come. */
			if (st.epoch === null) {
				st.epoch = m.epoch;
				st.lastSeq = m.last_seq;
			}
			break;
		case 'resync_required':
			/* What was missed is gone: start again from now. */
			st.epoch = m.epoch;
			st.lastSeq = m.last_seq;
			refreshOnline();
			break;
		case 'webrtc_call_invitation':
			onInvitation(m);
			break;
		case 'webrtc_call_initiated':
			onInitiated(m);
			break;
		case 'webrtc_call_accepted':
			guard(onAccepted(m));
			break;
		case 'webrtc_offer':
			guard(onOffer(m));
			break;
		case 'webrtc_answer':
			guard(onAnswer(m));
			break;
		case 'webrtc_ice_candidate':
			onCandidate(m);
			break;
		case 'webrtc_call_rejected':
			if (ours(m))
				finish(st.call, 'rejected', m.reason || '');
			break;
		case 'webrtc_call_ended':
		case 'call_ended':
			if (ours(m))
				finish(st.call, m.reason === 'no_answer' ?
				    'no_answer' : 'remote', m.reason || '');
			break;
		case 'error':
			note('Server: ' + m.error + (m.ref ? ' (' + m.ref + ')' :
			    ''), 'error');
			break;
		default:
			break;
		}
	}

	/* ---- presence ---- */

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
		try {
			const data = await api('GET', '/protected/users/online');
			st.online.clear();
			(data.users || []).forEach(function (u) {
				if (!st.user || u.extension !== st.user.extension)
					st.online.set(u.extension, {
						username: u.username,
						status: u.status,
					});
			});
			render();
		} catch (e) {
			note('Could not load who is online: ' + e.message, 'error');
		}
	}

	/* ---- call history ---- */

	/* Optional: a server without GET /protected/call/logs shows none. */
	async function refreshLogs() {
		if (!st.token)
			return null;
		try {
			const data = await api('GET', '/protected/call/logs?limit=' +
			    LOGS_SHOWN);
			st.logs = data.call_logs || [];
		} catch (e) {
			st.logs = null;
		}
		render();
		return st.logs;
	}

	/* ---- calls ---- */

	/* The message belongs to the current call. Before initiate has
	 * answered, the caller knows the call only by its peer. */
	function ours(m) {
		const c = st.call;
		if (!c)
			return false;
		const id = m.call_id || m.channel;
		if (c.id && id)
			return id === c.id;
		return m.from === c.peer || m.target === c.peer;
	}

	function newCall(fields) {
		const c = {
			id: null,
			peer: '',
			peerName: '',
			role: 'caller',
			state: 'calling',
			pc: null,
			media: null,
			local: null,
			pending: [],
			stats: null,
			startedAt: Date.now(),
			acceptedAt: null,
			connectedAt: null,
		};
		Object.assign(c, fields);
		return c;
	}

	/* The microphone, or null: without one the call still receives. */
	function microphone(c) {
		if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
			note('No microphone here: browsers allow one only on ' +
			    'https or localhost pages. Listening only.', 'error');
			c.media = Promise.resolve(null);
			return;
		}
		c.media = navigator.mediaDevices.getUserMedia({ audio: true,
		    video: false }).catch(function (e) {
			note('Microphone unavailable (' + e.message +
			    '); listening only.', 'error');
			return null;
		});
	}

	function connectDeadline(c) {
		setTimeout(function () {
			if (st.call !== c || c.state === 'connected')
				return;
			note('No audio path to ' + c.peer + ' could be found.',
			    'error');
			hangup().catch(function () {});
		}, CONNECT_MS);
	}

	/* A call's async step failed: end the call, tell the peer. */
	function guard(promise) {
		promise.catch(function (e) {
			note('Call failed: ' + e.message, 'error');
			if (st.call)
				hangup().catch(function () {});
		});
	}

	async function call(ext) {
		ext = String(ext || '').trim();
		if (!st.token)
			throw new Error('not logged in');
		if (st.call)
			throw new Error('already in a call');
		if (!/^\d{4,6}$/.test(ext))
			throw new Error('an extension is 4 to 6 digits');
		if (ext === st.user.extension)
			throw new Error('that is your own extension');
		const known = st.online.get(ext);
		const c = newCall({ peer: ext, peerName: known ? known.username :
		    '', role: 'caller', state: 'calling' });
		st.call = c;
		st.message = '';
		microphone(c);
		render();
		let data;
		try {
			data = await api('POST',
			    '/protected/call/initiate?method=webrtc',
			    { target_extension: ext });
		} catch (e) {
			finish(c, 'failed', e.message);
			/* The server's word for "no socket of theirs is open". */
			note(e.status === 500 && /notify/.test(e.message) ?
			    ext + ' is not connected right now.' :
			    'Call to ' + ext + ' failed: ' + e.message, 'error');
			throw e;
		}
		if (!c.id)
			c.id = data.call_id;
		/* Hung up while initiate was on its way: end it now. */
		if (st.call !== c)
			await tellEnd(c);
		render();
		return c.id;
	}

	function onInitiated(m) {
		const c = st.call;
		if (c && c.role === 'caller' && !c.id && m.target === c.peer)
			c.id = m.call_id;
		render();
	}

	function onInvitation(m) {
		if (st.call) {
			/* One call at a time: a second caller hears busy. */
			send({ type: 'webrtc_call_rejected', call_id: m.call_id,
			    to: m.caller_extension, channel: m.call_id,
			    reason: 'busy' });
			return;
		}
		st.call = newCall({ id: m.call_id, peer: m.caller_extension,
		    peerName: m.caller_username || '', role: 'callee',
		    state: 'ringing' });
		st.message = '';
		render();
	}

	function accept() {
		const c = st.call;
		if (!c || c.role !== 'callee' || c.state !== 'ringing')
			throw new Error('no incoming call');
		c.state = 'connecting';
		c.acceptedAt = Date.now();
		connectDeadline(c);
		microphone(c);
		send({ type: 'webrtc_call_accepted', call_id: c.id, to: c.peer,
		    channel: c.id });
		render();
		return c.id;
	}

	function reject() {
		const c = st.call;
		if (!c || c.role !== 'callee' || c.state !== 'ringing')
			throw new Error('no incoming call');
		send({ type: 'webrtc_call_rejected', call_id: c.id, to: c.peer,
		    channel: c.id });
		finish(c, 'rejected', 'rejected here');
		return c.id;
	}

	async function hangup() {
		const c = st.call;
		if (!c)
			return null;
		if (c.role === 'callee' && c.state === 'ringing') {
			reject();
			return null;
		}
		finish(c, 'local', '');
		return tellEnd(c);
	}

	/* The peer hears webrtc_call_ended; the server closes the log and
	 * answers with the duration it recorded. */
	async function tellEnd(c) {
		if (!c.id)
			return null; /* call() does it once initiate answers */
		send({ type: 'webrtc_call_ended', call_id: c.id, to: c.peer,
		    channel: c.id });
		try {
			const data = await api('POST', '/protected/call/hangup',
			    { channel: c.id });
			if (st.lastCall && st.lastCall.id === c.id)
				st.lastCall.duration = data.duration;
			refreshLogs();
			return data;
		} catch (e) {
			note('Hang-up not recorded: ' + e.message, 'error');
			return null;
		}
	}

	function peerConnection(c) {
		const pc = new RTCPeerConnection({ iceServers: ICE_SERVERS });
		c.pc = pc;
		pc.onicecandidate = function (ev) {
			/* A null candidate ends gathering; the peer needs no word. */
			if (!ev.candidate || st.call !== c)
				return;
			const k = ev.candidate;
			send({ type: 'webrtc_ice_candidate', candidate: {
				candidate: k.candidate,
				sdpMid: k.sdpMid,
				sdpMLineIndex: k.sdpMLineIndex,
				usernameFragment: k.usernameFragment,
			}, to: c.peer, channel: c.id });
		};
		pc.ontrack = function (ev) {
			if (st.call !== c)
				return;
			const audio = $('remote-audio');
			audio.srcObject = ev.streams[0] ||
			    new MediaStream([ev.track]);
			/* Autoplay may wait for a click; the call goes on. */
			audio.play().catch(function () {});
		};
		pc.onconnectionstatechange = function () {
			if (st.call !== c)
				return;
			if (pc.connectionState === 'connected' &&
			    c.state !== 'connected') {
				c.state = 'connected';
				c.connectedAt = Date.now();
			} else if (pc.connectionState === 'failed') {
				note('The audio connection failed.', 'error');
				hangup().catch(function () {});
				return;
			}
			render();
		};
		return pc;
	}

	async function addMicrophone(c) {
		const stream = await c.media;
		if (st.call !== c)
			return;
		if (stream) {
			c.local = stream;
			stream.getTracks().forEach(function (t) {
				c.pc.addTrack(t, stream);
			});
		} else if (c.role === 'caller') {
			c.pc.addTransceiver('audio', { direction: 'recvonly' });
		}
	}

	function description(v) {
		const d = typeof v === 'string' ? JSON.parse(v) : v;
		if (!d || typeof d.sdp !== 'string' || typeof d.type !== 'string')
			throw new Error('bad session description');
		return { type: d.type, sdp: d.sdp };
	}

	async function flushCandidates(c) {
		const list = c.pending;
		c.pending = [];
		for (const k of list)
			await c.pc.addIceCandidate(k);
	}

	/* Caller: the callee accepted; offer. */
	async function onAccepted(m) {
		const c = st.call;
		if (!c || c.role !== 'caller' || c.state !== 'calling' || !ours(m))
			return;
		if (!c.id)
			c.id = m.call_id || m.channel;
		c.state = 'connecting';
		c.acceptedAt = Date.now();
		connectDeadline(c);
		render();
		const pc = peerConnection(c);
		await addMicrophone(c);
		if (st.call !== c)
			return;
		const offer = await pc.createOffer();
		await pc.setLocalDescription(offer);
		if (st.call !== c)
			return;
		send({ type: 'webrtc_offer', offer: { type: offer.type,
		    sdp: offer.sdp }, to: c.peer, channel: c.id });
	}

	/* Callee: answer the offer. */
	async function onOffer(m) {
		const c = st.call;
		if (!c || c.role !== 'callee' || c.state === 'ringing' || !ours(m))
			return;
		const pc = c.pc || peerConnection(c);
		await pc.setRemoteDescription(description(m.offer));
		await flushCandidates(c);
		await addMicrophone(c);
		if (st.call !== c)
			return;
		const answer = await pc.createAnswer();
		await pc.setLocalDescription(answer);
		if (st.call !== c)
			return;
		send({ type: 'webrtc_answer', answer: { type: answer.type,
		    sdp: answer.sdp }, to: c.peer, channel: c.id });
	}

	async function onAnswer(m) {
		const c = st.call;
		if (!c || c.role !== 'caller' || !c.pc || !ours(m))
			return;
		await c.pc.setRemoteDescription(description(m.answer));
		await flushCandidates(c);
	}

	function onCandidate(m) {
		const c = st.call;
		if (!c || !ours(m) || !m.candidate)
			return;
		let k;
		try {
			k = typeof m.candidate === 'string' ?
			    JSON.parse(m.candidate) : m.candidate;
		} catch (e) {
			return;
		}
		if (!c.pc || !c.pc.remoteDescription) {
			c.pending.push(k);
			return;
		}
		c.pc.addIceCandidate(k).catch(function (e) {
			note('A network path was refused: ' + e.message, 'error');
		});
	}

	/* The call is over here, however it ended. */
	function finish(c, end, reason) {
		if (!c || st.call !== c)
			return;
		st.call = null;
		if (c.pc)
			c.pc.close();
		if (c.media)
			c.media.then(function (s) {
				if (s)
					s.getTracks().forEach(function (t) {
						t.stop();
					});
			});
		$('remote-audio').srcObject = null;
		st.lastCall = {
			id: c.id,
			peer: c.peer,
			peerName: c.peerName,
			role: c.role,
			end: end,
			reason: reason || '',
			startedAt: c.startedAt,
			acceptedAt: c.acceptedAt,
			connectedAt: c.connectedAt,
			endedAt: Date.now(),
			stats: c.stats,
			duration: null,
		};
		if (end !== 'local')
			refreshLogs();
		render();
	}

	/* ---- statistics ---- */

	async function stats() {
		const c = st.call;
		if (!c || !c.pc)
			return null;
		const report = await c.pc.getStats();
		const out = {
			connectionState: c.pc.connectionState,
			iceConnectionState: c.pc.iceConnectionState,
			inbound: { bytesReceived: 0, packetsReceived: 0,
			    packetsLost: 0 },
			outbound: { bytesSent: 0, packetsSent: 0 },
			pair: null,
		};
		let pairId = null;
		report.forEach(function (s) {
			const kind = s.kind || s.mediaType;
			if (s.type === 'inbound-rtp' && kind === 'audio') {
				out.inbound.bytesReceived += s.bytesReceived || 0;
				out.inbound.packetsReceived += s.packetsReceived || 0;
				out.inbound.packetsLost += s.packetsLost || 0;
			} else if (s.type === 'outbound-rtp' && kind === 'audio') {
				out.outbound.bytesSent += s.bytesSent || 0;
				out.outbound.packetsSent += s.packetsSent || 0;
			} else if (s.type === 'transport' &&
			    s.selectedCandidatePairId) {
				pairId = s.selectedCandidatePairId;
			}
		});
		const pair = pairId && report.get(pairId);
		if (pair) {
			const local = report.get(pair.localCandidateId);
			const remote = report.get(pair.remoteCandidateId);
			out.pair = {
				state: pair.state,
				local: local ? local.candidateType + ' ' +
				    local.protocol : '',
				remote: remote ? remote.candidateType + ' ' +
				    remote.protocol : '',
				rtt: pair.currentRoundTripTime,
			};
		}
		if (st.call === c)
			c.stats = out;
		return out;
	}

	/* ---- the page ---- */

	function clock(ms) {
		const s = Math.max(0, Math.floor(ms / 1000));
		return Math.floor(s / 60) + ':' + String(s % 60).padStart(2, '0');
	}

	function who(ext, name) {
		return name ? name + ' (' + ext + ')' : ext;
	}

	function kb(bytes) {
		return (bytes / 1024).toFixed(1) + ' kB';
	}

	function callText() {
		const c = st.call;
		if (c) {
			const p = who(c.peer, c.peerName);
			switch (c.state) {
			case 'calling':
				return c.id ? 'Ringing ' + p + '…' : 'Calling ' +
				    p + '…';
			case 'ringing':
				return 'Incoming call from ' + p;
			case 'connecting':
				return 'Connecting to ' + p + '…';
			case 'connected':
				return 'In call with ' + p + ' — ' +
				    clock(Date.now() - c.connectedAt);
			default:
				return c.state;
			}
		}
		const l = st.lastCall;
		if (!l)
			return 'No call.';
		const p = who(l.peer, l.peerName);
		const ends = {
			local: 'you hung up',
			remote: 'they hung up',
			rejected: 'rejected',
			no_answer: 'no answer',
			failed: 'failed',
		};
		let text = 'Last call with ' + p + ': ' + (ends[l.end] || l.end);
		if (typeof l.duration === 'number')
			text += ', ' + clock(l.duration * 1000);
		else if (l.connectedAt)
			text += ', ' + clock(l.endedAt - l.connectedAt);
		return text + '.';
	}

	function mediaText() {
		const c = st.call;
		const s = c && c.stats;
		if (!s)
			return '';
		return 'Audio in ' + kb(s.inbound.bytesReceived) + ' (' +
		    s.inbound.packetsReceived + ' packets), out ' +
		    kb(s.outbound.bytesSent) + (s.pair ? ' — ' + s.pair.local +
		    ' ↔ ' + s.pair.remote : '');
	}

	function renderOnline() {
		const list = $('online');
		list.replaceChildren();
		const exts = Array.from(st.online.keys()).sort();
		exts.forEach(function (ext) {
			const u = st.online.get(ext);
			const li = document.createElement('li');
			const name = document.createElement('span');
			name.className = 'name';
			name.textContent = u.username || ext;
			const num = document.createElement('span');
			num.className = 'ext';
			num.textContent = ext;
			const badge = document.createElement('span');
			badge.className = 'badge ' + u.status;
			badge.textContent = u.status;
			const b = document.createElement('button');
			b.type = 'button';
			b.className = 'good';
			b.textContent = 'Call';
			b.dataset.ext = ext;
			b.disabled = !!st.call;
			li.append(name, num, badge, b);
			list.append(li);
		});
		$('online-empty').hidden = exts.length > 0;
	}

	function logText(l) {
		const out = st.user && l.caller_id === st.user.id;
		const other = out ? l.callee : l.caller;
		const p = other && other.extension ?
		    who(other.extension, other.username) : '?';
		const when = new Date(l.start_time);
		let text = (out ? 'to ' : 'from ') + p + ' — ' + l.status;
		if (l.status === 'ended' || l.duration > 0)
			text += ', ' + clock(l.duration * 1000);
		return [isNaN(when) ? '' : when.toLocaleString(), text];
	}

	function renderLogs() {
		$('logs-panel').hidden = st.logs === null;
		if (st.logs === null)
			return;
		const list = $('logs');
		list.replaceChildren();
		st.logs.slice(0, LOGS_SHOWN).forEach(function (l) {
			const li = document.createElement('li');
			const parts = logText(l);
			const when = document.createElement('span');
			when.className = 'when';
			when.textContent = parts[0];
			const what = document.createElement('span');
			what.textContent = parts[1];
			li.dataset.channel = l.channel;
			li.append(when, what);
			list.append(li);
		});
		$('logs-empty').hidden = st.logs.length > 0;
	}

	function render() {
		const inside = !!st.user;
		$('login-view').hidden = inside;
		$('phone-view').hidden = !inside;
		$('me').hidden = !inside;
		const msg = $('message');
		msg.textContent = st.message;
		msg.className = st.messageKind;
		if (!inside)
			return;
		$('me-name').textContent = st.user.username;
		$('me-ext').textContent = st.user.extension;
		const link = $('link');
		link.textContent = st.wsOpen ? 'online' : 'reconnecting';
		link.className = 'badge ' + (st.wsOpen ? 'online' : 'away');

		const c = st.call;
		const state = c ? c.state : 'idle';
		$('call-panel').className = 'panel ' + state;
		$('call-status').textContent = callText();
		$('incoming').hidden = state !== 'ringing';
		$('hangup').hidden = !c || state === 'ringing';
		$('dial').disabled = !!c;
		$('dial-ext').disabled = !!c;
		$('media').textContent = mediaText();
		renderOnline();
		renderLogs();

		/* While a call lives the clock and the audio figures move. */
		if (c && !st.tick) {
			st.tick = setInterval(function () {
				if (!st.call) {
					clearInterval(st.tick);
					st.tick = null;
					return;
				}
				if (st.call.pc)
					stats().then(render, function () {});
				else
					render();
			}, STATS_MS);
		}
	}

	function wire() {
		$('login-form').addEventListener('submit', function (ev) {
			ev.preventDefault();
			const b = $('login-button');
			b.disabled = true;
			login($('username').value, $('password').value).then(
			    function () {
				$('password').value = '';
			}, function (e) {
				note('Login failed: ' + e.message, 'error');
			}).finally(function () {
				b.disabled = false;
			});
		});
		$('logout').addEventListener('click', function () {
			logout();
		});
		$('dial-form').addEventListener('submit', function (ev) {
			ev.preventDefault();
			call($('dial-ext').value).catch(function (e) {
				note('Cannot call: ' + e.message, 'error');
			});
		});
		$('online').addEventListener('click', function (ev) {
			const ext = ev.target.dataset && ev.target.dataset.ext;
			if (ext)
				call(ext).catch(function (e) {
					note('Cannot call: ' + e.message, 'error');
				});
		});
		$('accept').addEventListener('click', function () {
			try {
				accept();
			} catch (e) {
				note(e.message, 'error');
			}
		});
		$('reject').addEventListener('click', function () {
			try {
				reject();
			} catch (e) {
				note(e.message, 'error');
			}
		});
		$('hangup').addEventListener('click', function () {
			hangup();
		});
	}

	function snapshot(c) {
		if (!c)
			return null;
		return {
			id: c.id,
			peer: c.peer,
			peerName: c.peerName,
			role: c.role,
			state: c.state,
			startedAt: c.startedAt,
			acceptedAt: c.acceptedAt,
			connectedAt: c.connectedAt,
			connectionState: c.pc ? c.pc.connectionState : null,
		};
	}

	window.phone = {
		login: login,
		logout: logout,
		call: call,
		accept: accept,
		reject: reject,
		hangup: hangup,
		stats: stats,
		refreshLogs: refreshLogs,
		/* logged-out | idle | calling | ringing | connecting | connected */
		get state() {
			if (!st.user)
				return 'logged-out';
			return st.call ? st.call.state : 'idle';
		},
		get user() {
			return st.user ? Object.assign({}, st.user) : null;
		},
		get connected() {
			return st.wsOpen;
		},
		get online() {
			return Array.from(st.online, function (e) {
				return { extension: e[0], username: e[1].username,
				    status: e[1].status };
			});
		},
		get current() {
			return snapshot(st.call);
		},
		/* CallLogs as GET /protected/call/logs gave them; null without. */
		get logs() {
			return st.logs ? JSON.parse(JSON.stringify(st.logs)) : null;
		},
		get lastCall() {
			return st.lastCall ? Object.assign({}, st.lastCall) : null;
		},
		get events() {
			return st.events.slice();
		},
		get counts() {
			return JSON.parse(JSON.stringify(st.counts));
		},
	};

	wire();
	render();
	resume();
})();
