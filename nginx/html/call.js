/*
 * Calls: browser-to-browser (WebRTC) audio signalled through the relay, and
 * PBX calls placed through Asterisk when the server has one.
 *
 * WebRTC flow (contract §1.7):
 *   caller: POST /protected/call/initiate?method=webrtc
 *   callee: gets webrtc_call_invitation, sends webrtc_call_accepted
 *   caller: sends webrtc_offer; callee answers with webrtc_answer;
 *   both:   trickle webrtc_ice_candidate
 *   either: webrtc_call_ended, then POST /protected/call/hangup
 * Hold travels as call_status {status: "hold" | "active"} to the peer.
 *
 * ICE servers (STUN, TURN with credentials) are whatever GET /config
 * lists; none are built in.
 */

import { ringtone, ringback } from './ring.js';

/* Accepted but no audio path by then: there is no route between the two. */
const CONNECT_MS = 20000;

export class Phone {
	/*
	 * api: Api; link: Link; on: {change(), notice(text, kind),
	 * ended(call)}; audio: the <audio> element for the far end.
	 */
	constructor(api, link, audio, on) {
		this.api = api;
		this.link = link;
		this.audio = audio;
		this.on = on;
		this.me = null;
		this.iceServers = [];
		this.call = null;
		this.lastCall = null;
		this.directory = () => '';
	}

	get state() {
		return this.call ? this.call.state : 'idle';
	}

	/* ---- placing, answering, ending ---- */

	async dial(ext, via) {
		ext = String(ext || '').trim();
		if (this.call)
			throw new Error('You are already in a call.');
		if (!/^\d{1,15}$/.test(ext))
			throw new Error('An extension is digits only, like ' +
			    '1001.');
		if (this.me && ext === this.me.extension)
			throw new Error('That is your own extension.');
		const c = this.newCall({ peer: ext,
		    peerName: this.directory(ext), role: 'caller',
		    state: 'calling', kind: via === 'pbx' ? 'pbx' : 'webrtc' });
		this.call = c;
		if (c.kind === 'webrtc')
			this.microphone(c);
		this.changed();
		let data;
		try {
			data = await this.api.post('/protected/call/initiate' +
			    (c.kind === 'webrtc' ? '?method=webrtc' : ''),
			    { target_extension: ext });
		} catch (e) {
			this.finish(c, 'failed', e.message);
			throw new Error(this.initiateWords(e, ext, c.kind));
		}
		if (!c.id)
			c.id = data.call_id || data.channel;
		if (c.kind === 'pbx') {
			c.channel = data.channel;
			c.peerName = data.callee || c.peerName;
		}
		/* Hung up while initiate was on its way: end it now. */
		if (this.call !== c)
			await this.tellEnd(c);
		else
			ringback.start();
		this.changed();
		return c.id;
	}

	/* What a refused initiate means to the person calling. */
	initiateWords(e, ext, kind) {
		if (e.status === 404 && /extension/i.test(e.message))
			return 'No user has extension ' + ext + '.';
		if (e.status === 500 && /notify/i.test(e.message))
			return this.who(ext, this.directory(ext)) +
			    ' is not connected right now; try again later.';
		if (kind === 'pbx' && e.unavailable)
			return 'Calls through the phone system are not ' +
			    'available here: ' + e.message + '.';
		return 'The call to ' + ext + ' failed: ' + e.message + '.';
	}

	accept() {
		const c = this.call;
		if (!c || c.role !== 'callee' || c.state !== 'ringing')
			throw new Error('There is no incoming call to accept.');
		ringtone.stop();
		c.state = 'connecting';
		c.acceptedAt = Date.now();
		if (c.kind === 'pbx') {
			this.api.post('/protected/call/answer',
			    { channel: c.id }).then(() => {
				if (this.call === c) {
					c.state = 'connected';
					c.connectedAt = Date.now();
					this.changed();
				}
			}, (e) => {
				this.on.notice('The call could not be ' +
				    'answered: ' + e.message + '.', 'error');
				this.finish(c, 'failed', e.message);
			});
			this.changed();
			return c.id;
		}
		this.connectDeadline(c);
		this.microphone(c);
		this.link.send({ type: 'webrtc_call_accepted', call_id: c.id,
		    to: c.peer, channel: c.id });
		this.changed();
		return c.id;
	}

	reject() {
		const c = this.call;
		if (!c || c.role !== 'callee' || c.state !== 'ringing')
			throw new Error('There is no incoming call to reject.');
		if (c.kind === 'pbx')
			this.api.post('/protected/call/hangup',
			    { channel: c.id }).catch(() => {});
		else
			this.link.send({ type: 'webrtc_call_rejected',
			    call_id: c.id, to: c.peer, channel: c.id });
		this.finish(c, 'rejected', 'rejected here');
		return c.id;
	}

	async hangup() {
		const c = this.call;
		if (!c)
			return null;
		if (c.role === 'callee' && c.state === 'ringing') {
			this.reject();
			return null;
		}
		this.finish(c, 'local', '');
		return this.tellEnd(c);
	}

	/* The peer hears webrtc_call_ended; the server closes the log and
	 * answers with the duration it recorded. */
	async tellEnd(c) {
		if (!c.id)
			return null; /* dial() does it once initiate answers */
		if (c.kind === 'webrtc')
			this.link.send({ type: 'webrtc_call_ended',
			    call_id: c.id, to: c.peer, channel: c.id });
		try {
			const data = await this.api.post(
			    '/protected/call/hangup',
			    { channel: c.channel || c.id });
			if (this.lastCall && this.lastCall.id === c.id) {
				this.lastCall.duration = data.duration;
				this.changed();
			}
			return data;
		} catch (e) {
			this.on.notice('The end of the call was not ' +
			    'recorded: ' + e.message + '.', 'error');
			return null;
		}
	}

	/* ---- in the call ---- */

	setMuted(on) {
		const c = this.call;
		if (!c)
			return;
		c.muted = !!on;
		this.applyMedia(c);
		this.changed();
	}

	setHeld(on) {
		const c = this.call;
		if (!c || c.state !== 'connected')
			return;
		c.held = !!on;
		this.applyMedia(c);
		if (c.kind === 'webrtc')
			this.link.send({ type: 'call_status', call_id: c.id,
			    channel: c.id, to: c.peer,
			    status: c.held ? 'hold' : 'active' });
		this.changed();
	}

	/* Mute stops the microphone's samples (silence is sent); hold stops
	 * sending at all and silences the far end here. */
	applyMedia(c) {
		if (c.local)
			c.local.getAudioTracks().forEach((t) => {
				t.enabled = !c.muted && !c.held;
			});
		if (c.pc && c.local) {
			const track = c.held ? null :
			    c.local.getAudioTracks()[0];
			c.pc.getSenders().forEach((s) => {
				if (s.track !== track && (s.track || track))
					s.replaceTrack(track).catch(() => {});
			});
		}
		this.audio.muted = c.held || c.remoteHeld;
	}

	/* ---- the relay's messages ---- */

	receive(m) {
		switch (m.type) {
		case 'webrtc_call_invitation':
			this.onInvitation(m);
			break;
		case 'webrtc_call_initiated':
			if (this.call && this.call.role === 'caller' &&
			    !this.call.id && m.target === this.call.peer)
				this.call.id = m.call_id;
			break;
		case 'webrtc_call_accepted':
			this.guard(this.onAccepted(m));
			break;
		case 'webrtc_offer':
			this.guard(this.onOffer(m));
			break;
		case 'webrtc_answer':
			this.guard(this.onAnswer(m));
			break;
		case 'webrtc_ice_candidate':
			this.onCandidate(m);
			break;
		case 'webrtc_call_rejected':
			if (this.ours(m))
				this.finish(this.call, m.reason === 'busy' ?
				    'busy' : 'rejected', m.reason || '');
			break;
		case 'webrtc_call_ended':
		case 'call_ended':
			if (!this.ours(m))
				break;
			this.finish(this.call, m.reason === 'no_answer' ?
			    'no_answer' : this.call.state === 'ringing' ?
			    'missed' : 'remote', m.reason || '');
			break;
		case 'call_status':
			this.onStatus(m);
			break;
		case 'incoming_call':
			this.onPbxIncoming(m);
			break;
		default:
			break;
		}
	}

	/* The message belongs to the current call. Before initiate has
	 * answered, the caller knows the call only by its peer. */
	ours(m) {
		const c = this.call;
		if (!c)
			return false;
		const id = m.call_id || m.channel;
		if (c.id && id)
			return id === c.id || id === c.channel;
		return m.from === c.peer || m.target === c.peer;
	}

	onInvitation(m) {
		if (this.call) {
			/* One call at a time: a second caller hears busy. */
			this.link.send({ type: 'webrtc_call_rejected',
			    call_id: m.call_id, to: m.caller_extension,
			    channel: m.call_id, reason: 'busy' });
			return;
		}
		this.call = this.newCall({ id: m.call_id,
		    peer: m.caller_extension, peerName: m.caller_username ||
		    this.directory(m.caller_extension), role: 'callee',
		    state: 'ringing', kind: 'webrtc' });
		ringtone.start();
		this.changed();
	}

	onPbxIncoming(m) {
		if (this.call || !m.channel)
			return;
		this.call = this.newCall({ id: m.call_id || m.channel,
		    channel: m.channel, peer: m.caller || '',
		    peerName: this.directory(m.caller || ''), role: 'callee',
		    state: 'ringing', kind: 'pbx' });
		ringtone.start();
		this.changed();
	}

	onStatus(m) {
		const c = this.call;
		if (!c || !this.ours(m))
			return;
		if (m.status === 'hold' || m.status === 'active') {
			c.remoteHeld = m.status === 'hold';
			this.applyMedia(c);
		} else if (c.kind === 'pbx' && m.status === 'connected') {
			ringback.stop();
			c.state = 'connected';
			c.connectedAt = c.connectedAt || Date.now();
		} else if (c.kind === 'pbx' && m.status === 'ended') {
			this.finish(c, 'remote', '');
			return;
		}
		this.changed();
	}

	/* Caller: the callee accepted; make the offer. */
	async onAccepted(m) {
		const c = this.call;
		if (!c || c.role !== 'caller' || c.state !== 'calling' ||
		    !this.ours(m))
			return;
		ringback.stop();
		if (!c.id)
			c.id = m.call_id || m.channel;
		c.state = 'connecting';
		c.acceptedAt = Date.now();
		this.connectDeadline(c);
		this.changed();
		const pc = this.peerConnection(c);
		await this.addMicrophone(c);
		if (this.call !== c)
			return;
		const offer = await pc.createOffer();
		await pc.setLocalDescription(offer);
		if (this.call !== c)
			return;
		this.link.send({ type: 'webrtc_offer',
		    offer: { type: offer.type, sdp: offer.sdp }, to: c.peer,
		    call_id: c.id, channel: c.id });
	}

	/* Callee: answer the offer. */
	async onOffer(m) {
		const c = this.call;
		if (!c || c.role !== 'callee' || c.state === 'ringing' ||
		    !this.ours(m))
			return;
		const pc = c.pc || this.peerConnection(c);
		await pc.setRemoteDescription(description(m.offer));
		await this.flushCandidates(c);
		if (!c.micAdded)
			await this.addMicrophone(c);
		if (this.call !== c)
			return;
		const answer = await pc.createAnswer();
		await pc.setLocalDescription(answer);
		if (this.call !== c)
			return;
		this.link.send({ type: 'webrtc_answer', answer: {
		    type: answer.type, sdp: answer.sdp }, to: c.peer,
		    call_id: c.id, channel: c.id });
	}

	async onAnswer(m) {
		const c = this.call;
		if (!c || c.role !== 'caller' || !c.pc || !this.ours(m))
			return;
		await c.pc.setRemoteDescription(description(m.answer));
		await this.flushCandidates(c);
	}

	onCandidate(m) {
		const c = this.call;
		if (!c || !this.ours(m) || !m.candidate)
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
		c.pc.addIceCandidate(k).catch((e) => {
			this.on.notice('A network path was refused: ' +
			    e.message + '.', 'error');
		});
	}

	/* ---- WebRTC plumbing ---- */

	newCall(fields) {
		return Object.assign({
			id: null,
			channel: null,
			kind: 'webrtc',
			peer: '',
			peerName: '',
			role: 'caller',
			state: 'calling',
			pc: null,
			media: null,
			local: null,
			micAdded: false,
			pending: [],
			stats: null,
			muted: false,
			held: false,
			remoteHeld: false,
			startedAt: Date.now(),
			acceptedAt: null,
			connectedAt: null,
		}, fields);
	}

	/* The microphone, or null: without one the call still receives. */
	microphone(c) {
		if (!navigator.mediaDevices ||
		    !navigator.mediaDevices.getUserMedia) {
			this.on.notice('This page cannot use a microphone: ' +
			    'browsers allow one only on https or localhost ' +
			    'pages. You can listen only.', 'error');
			c.media = Promise.resolve(null);
			return;
		}
		c.media = navigator.mediaDevices.getUserMedia({ audio: true,
		    video: false }).catch((e) => {
			this.on.notice('The microphone is not available (' +
			    e.message + '); you can listen only.', 'error');
			return null;
		});
	}

	connectDeadline(c) {
		setTimeout(() => {
			if (this.call !== c || c.state === 'connected')
				return;
			this.on.notice('No audio path to ' +
			    this.who(c.peer, c.peerName) + ' could be found.',
			    'error');
			this.hangup().catch(() => {});
		}, CONNECT_MS);
	}

	/* A call's async step failed: end the call, tell the peer. */
	guard(promise) {
		promise.catch((e) => {
			this.on.notice('The call failed: ' + e.message + '.',
			    'error');
			if (this.call)
				this.hangup().catch(() => {});
		});
	}

	peerConnection(c) {
		const pc = new RTCPeerConnection(
		    { iceServers: this.iceServers });
		c.pc = pc;
		pc.onicecandidate = (ev) => {
			/* A null candidate ends gathering; the peer needs no
			 * word of it. */
			if (!ev.candidate || this.call !== c)
				return;
			const k = ev.candidate;
			const candidate = {
				candidate: k.candidate,
				sdpMid: k.sdpMid,
				sdpMLineIndex: k.sdpMLineIndex,
				usernameFragment: k.usernameFragment,
			};
			this.link.send({ type: 'webrtc_ice_candidate',
			    candidate, to: c.peer, call_id: c.id,
			    channel: c.id });
		};
		pc.ontrack = (ev) => {
			if (this.call !== c)
				return;
			this.audio.srcObject = ev.streams[0] ||
			    new MediaStream([ev.track]);
			/* Autoplay may wait for a click; the call goes on. */
			this.audio.play().catch(() => {});
		};
		pc.onconnectionstatechange = () => {
			if (this.call !== c)
				return;
			if (pc.connectionState === 'connected' &&
			    c.state !== 'connected') {
				c.state = 'connected';
				c.connectedAt = Date.now();
			} else if (pc.connectionState === 'failed') {
				this.on.notice('The audio connection failed.',
				    'error');
				this.hangup().catch(() => {});
				return;
			}
			this.changed();
		};
		return pc;
	}

	async addMicrophone(c) {
		const stream = await c.media;
		if (this.call !== c || c.micAdded)
			return;
		c.micAdded = true;
		if (stream) {
			c.local = stream;
			for (const t of stream.getTracks())
				c.pc.addTrack(t, stream);
			this.applyMedia(c);
		} else if (c.role === 'caller') {
			c.pc.addTransceiver('audio', { direction: 'recvonly' });
		}
	}

	async flushCandidates(c) {
		const list = c.pending;
		c.pending = [];
		for (const k of list)
			await c.pc.addIceCandidate(k);
	}

	/* The call is over here, however it ended. */
	finish(c, end, reason) {
		if (!c || this.call !== c)
			return;
		ringtone.stop();
		ringback.stop();
		this.call = null;
		if (c.pc)
			c.pc.close();
		if (c.media)
			c.media.then((s) => {
				if (s)
					s.getTracks().forEach((t) => t.stop());
			});
		this.audio.srcObject = null;
		this.audio.muted = false;
		this.lastCall = {
			id: c.id,
			kind: c.kind,
			peer: c.peer,
			peerName: c.peerName,
			role: c.role,
			end,
			reason: reason || '',
			startedAt: c.startedAt,
			acceptedAt: c.acceptedAt,
			connectedAt: c.connectedAt,
			endedAt: Date.now(),
			stats: c.stats,
			duration: null,
		};
		this.on.ended(this.lastCall);
		this.changed();
	}

	changed() {
		this.on.change();
	}

	who(ext, name) {
		return name ? name + ' (' + ext + ')' : ext;
	}

	/* ---- statistics ---- */

	async stats() {
		const c = this.call;
		if (!c || !c.pc)
			return null;
		const report = await c.pc.getStats();
		const out = {
			connectionState: c.pc.connectionState,
			iceConnectionState: c.pc.iceConnectionState,
			inbound: { bytesReceived: 0, packetsReceived: 0,
			    packetsLost: 0, audioLevel: 0, totalAudioEnergy: 0,
			    totalSamplesDuration: 0 },
			outbound: { bytesSent: 0, packetsSent: 0 },
			pair: null,
		};
		let pairId = null;
		report.forEach((s) => {
			const kind = s.kind || s.mediaType;
			if (s.type === 'inbound-rtp' && kind === 'audio') {
				const i = out.inbound;
				i.bytesReceived += s.bytesReceived || 0;
				i.packetsReceived += s.packetsReceived || 0;
				i.packetsLost += s.packetsLost || 0;
				i.audioLevel = Math.max(i.audioLevel,
				    s.audioLevel || 0);
				i.totalAudioEnergy += s.totalAudioEnergy || 0;
				i.totalSamplesDuration +=
				    s.totalSamplesDuration || 0;
			} else if (s.type === 'outbound-rtp' &&
			    kind === 'audio') {
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
			};
		}
		if (this.call === c)
			c.stats = out;
		return out;
	}
}

function description(v) {
	const d = typeof v === 'string' ? JSON.parse(v) : v;
	if (!d || typeof d.sdp !== 'string' || typeof d.type !== 'string')
		throw new Error('the peer sent a bad session description');
	return { type: d.type, sdp: d.sdp };
}
