#!/usr/bin/env node
/*
 * The browser scenarios of the web client, one per run:
 *
 *     SB_ARGS='{"a": {...user...}, ...}' node tests/browser/run.mjs \
 *         SCENARIO http://127.0.0.1:PORT [--shots DIR] [--deadline-ms N]
 *
 * SB_ARGS (JSON, from the environment because it holds passwords) names
 * the users a scenario needs: {username, password, extension}. Prints one
 * JSON line (see lib.mjs) and exits 0 when the scenario passed.
 *
 * Scenarios: call, rejected, offline, admin, admin_live, reconnect, keyboard,
 * screens, register.
 */
import { scenario, sleep, PHONE_VIEWPORT, DESKTOP_VIEWPORT } from './lib.mjs';

function usage(text) {
	process.stderr.write(`run.mjs: ${text}\n`);
	process.exit(2);
}

function parseArgs(argv) {
	const o = { name: null, base: null, shots: null, deadlineMs: 60000 };
	for (let i = 0; i < argv.length; i++) {
		const a = argv[i];
		if (a === '--shots')
			o.shots = argv[++i];
		else if (a === '--deadline-ms')
			o.deadlineMs = Number(argv[++i]);
		else if (!a.startsWith('--') && o.name === null)
			o.name = a;
		else if (!a.startsWith('--') && o.base === null)
			o.base = a.replace(/\/+$/, '');
		else
			usage(`unknown argument ${a}`);
	}
	if (!o.name || !o.base)
		usage('SCENARIO and BASE URL required');
	try {
		o.args = JSON.parse(process.env.SB_ARGS || '{}');
	} catch (e) {
		usage('SB_ARGS: not JSON');
	}
	return o;
}

/* ---- helpers over two people ---- */

async function bothIn(run, a, b, bOpts) {
	const pb = await run.person('b', bOpts);
	const pa = await run.person('a');
	await pb.open();
	await pa.open();
	const ub = await pb.login(b.username, b.password);
	const ua = await pa.login(a.username, a.password);
	/* B hears of A's arrival as an event; the list shows A. */
	await pb.until(`A (${ua.extension}) listed online`, (ext) =>
	    !!document.querySelector(`#online li[data-ext="${ext}"]`),
	    ua.extension);
	await pa.until(`B (${ub.extension}) listed online`, (ext) =>
	    !!document.querySelector(`#online li[data-ext="${ext}"]`),
	    ub.extension);
	return { pa, pb, ua, ub };
}

/* The caller dials through the form; the call id once it rings. */
async function dial(caller, ext) {
	await caller.page.fill('#dial-ext', ext);
	await caller.page.click('#dial');
	return caller.until('call id', () => window.switchboard.current &&
	    window.switchboard.current.id);
}

/* Inbound audio energy per second of audio over a window, from getStats:
 * how loud what arrives is. */
async function loudness(p, windowMs) {
	const s1 = await p.eval(() => window.switchboard.stats());
	await sleep(windowMs);
	const s2 = await p.eval(() => window.switchboard.stats());
	const dE = s2.inbound.totalAudioEnergy - s1.inbound.totalAudioEnergy;
	const dT = s2.inbound.totalSamplesDuration -
	    s1.inbound.totalSamplesDuration;
	return { energy_per_s: dT > 0 ? dE / dT : 0, seconds: dT,
	    bytes: s2.inbound.bytesReceived - s1.inbound.bytesReceived,
	    level: s2.inbound.audioLevel };
}

/* The row of call id in the person's history, once it is final. */
async function historyRow(p, id, statuses) {
	await p.view('history');
	for (;;) {
		const row = await p.eval((cid) => {
			const tr = document.querySelector(
			    `#history tr[data-channel="${cid}"]`);
			return tr ? { status: tr.dataset.status,
			    duration: Number(tr.dataset.duration),
			    cells: Array.from(tr.cells,
			    (c) => c.textContent) } :
			    null;
		}, id);
		if (row && statuses.includes(row.status))
			return row;
		if (p.run.left() <= 1)
			throw new Error(`${p.who}: ${id} not in the history ` +
			    `(${JSON.stringify(row)})`);
		await p.page.click('#history-refresh');
		await sleep(300);
	}
}

/* ---- scenarios ---- */

const scenarios = {};

/*
 * The main call: A calls B, B hears the ringtone and accepts, both peer
 * connections connect and audio flows both ways; A mutes and B's inbound
 * level drops; A holds and B is told; A hangs up; both histories list the
 * call with its duration.
 */
scenarios.call = async (run, args) => {
	/* B answers on a phone-sized screen in the dark theme. */
	const { pa, pb, ua, ub } = await bothIn(run, args.a, args.b,
	    { theme: 'dark', viewport: PHONE_VIEWPORT });
	const id = await dial(pa, ub.extension);
	await pb.until('incoming call rings', (cid) =>
	    window.switchboard.state === 'ringing' &&
	    window.switchboard.current.id === cid &&
	    !document.getElementById('accept').closest('[hidden]'), id);
	const ice = await pa.eval(() => window.switchboard.iceServers);
	const ringtone = await pb.eval(() => window.switchboard.ringing &&
	    window.switchboard.audio === 'running');
	const ringingText = await pb.text('#call-status');
	await pb.shot('call-incoming-dark-phone');
	await pa.shot('call-calling-light-desktop');

	await pb.page.click('#accept');
	for (const p of [pa, pb]) {
		const s = await p.until('connected', () =>
		    ['connected', 'idle'].includes(window.switchboard.state) &&
		    window.switchboard.state);
		if (s !== 'connected')
			throw new Error(`${p.who} gave up: ` + JSON.stringify(
			    await p.eval(() => window.switchboard.lastCall)));
	}
	const ringtoneAfter = await pb.eval(() => window.switchboard.ringing);

	/* Audio both ways, and growing. */
	const flow = {};
	for (const p of [pa, pb]) {
		run.step = `${p.who}: inbound audio`;
		const first = await p.until('inbound audio', async () => {
			const s = await window.switchboard.stats();
			return s && s.inbound.bytesReceived > 0 && s;
		});
		await sleep(700);
		const second = await p.eval(() => window.switchboard.stats());
		flow[p.who] = {
			state: second.connectionState,
			ice: second.iceConnectionState,
			bytes_1: first.inbound.bytesReceived,
			bytes_2: second.inbound.bytesReceived,
			packets: second.inbound.packetsReceived,
			sent: second.outbound.bytesSent,
			pair: second.pair,
		};
	}
	await pa.shot('call-connected-light-desktop');
	await pb.shot('call-connected-dark-phone');

	/* A mutes: what B receives goes quiet. */
	run.step = 'loudness before mute';
	const before = await loudness(pb, 1500);
	await pa.page.click('#mute');
	await pa.until('muted', () => window.switchboard.current.muted);
	await sleep(400); /* what was already on its way */
	run.step = 'loudness while muted';
	const muted = await loudness(pb, 1500);
	const muteText = await pa.text('#call-status');
	await pa.page.click('#mute');

	/* A holds: B is told. */
	await pa.page.click('#hold');
	await pb.until('B told of the hold', () =>
	    window.switchboard.current &&
	    window.switchboard.current.remoteHeld);
	const heldText = await pb.text('#call-status');
	await sleep(300); /* what was already on its way */
	run.step = 'loudness while held';
	const held = await loudness(pb, 1000);
	await pa.page.click('#hold');
	await pb.until('B told of the resume', () =>
	    !window.switchboard.current.remoteHeld);

	/* At least two seconds answered, then A hangs up. */
	const talked = await pa.eval(() => Date.now() -
	    window.switchboard.current.connectedAt);
	if (talked < 2200)
		await sleep(2200 - talked);
	const counts = { a: await pa.eval(() => window.switchboard.counts),
	    b: await pb.eval(() => window.switchboard.counts) };
	run.step = 'a: hang up';
	await pa.page.click('#hangup');
	const bLast = await pb.until('B sees the end', (cid) =>
	    window.switchboard.state === 'idle' &&
	    window.switchboard.lastCall &&
	    window.switchboard.lastCall.id === cid &&
	    window.switchboard.lastCall, id);
	const aLast = await pa.until('A has the duration', () =>
	    window.switchboard.lastCall &&
	    typeof window.switchboard.lastCall.duration === 'number' &&
	    window.switchboard.lastCall);
	const endedText = await pa.text('#call-status');

	const history = {
		a: await historyRow(pa, id, ['ended']),
		b: await historyRow(pb, id, ['ended']),
	};
	await pa.shot('call-history-light-desktop');
	return {
		call_id: id,
		a: { user: ua.username, extension: ua.extension, ...flow.a,
		    end: aLast.end, duration: aLast.duration },
		b: { user: ub.username, extension: ub.extension, ...flow.b,
		    end: bLast.end },
		ice_servers: ice, ringtone,
		ringtone_after_accept: ringtoneAfter,
		texts: { ringing: ringingText, muted: muteText, held: heldText,
		    ended: endedText },
		loudness: { before, muted, held },
		signalling: counts,
		history,
	};
};

/* B rejects A's call: A is told in words, both histories say rejected. */
scenarios.rejected = async (run, args) => {
	const { pa, pb, ub } = await bothIn(run, args.a, args.b);
	/* B reads the history when the call comes: the phone comes
	 * forward with the focus on Accept. */
	await pb.view('history');
	/* From the list this time, not the dialler. */
	await pa.page.click(`#online li[data-ext="${ub.extension}"] button`);
	const id = await pa.until('call id', () => window.switchboard.current &&
	    window.switchboard.current.id);
	const forward = await pb.until('incoming call rings in front', () =>
	    window.switchboard.state === 'ringing' &&
	    !document.getElementById('view-phone').hidden &&
	    location.hash === '#phone' && document.activeElement.id);
	await pb.page.click('#reject');
	await pa.until('A sees the rejection', () =>
	    window.switchboard.state === 'idle' &&
	    window.switchboard.lastCall &&
	    window.switchboard.lastCall.end === 'rejected');
	const text = await pa.text('#call-status');
	const ringing = await pb.eval(() => window.switchboard.ringing);
	const history = {
		a: await historyRow(pa, id, ['rejected']),
		b: await historyRow(pb, id, ['rejected']),
	};
	return { call_id: id, text, ringing_after_reject: ringing, history,
	    focus_when_ringing: forward };
};

/*
 * Calls that cannot ring: a user with no open socket, an extension nobody
 * has, and the PBX when the server has none. Each says why in words.
 */
scenarios.offline = async (run, args) => {
	run.allowHttp.push([500, /^\/protected\/call\/initiate$/],
	    [404, /^\/protected\/call\/initiate$/],
	    [502, /^\/protected\/call\/initiate$/],
	    [503, /^\/protected\/call\/initiate$/]);
	const pa = await run.person('a');
	await pa.open();
	await pa.login(args.a.username, args.a.password);
	const out = {};
	const attempt = async (label, ext, via) => {
		await pa.page.fill('#dial-ext', ext);
		await pa.page.selectOption('#dial-via', via);
		await pa.page.click('#dial');
		out[label] = await pa.until(`${label}: refused in words`, () =>
		    window.switchboard.state === 'idle' &&
		    document.getElementById('notice').className === 'error' &&
		    document.getElementById('notice').textContent);
		out[label + '_focus'] = await pa.eval(() =>
		    document.activeElement.id);
		await pa.eval(() => {
			document.getElementById('notice').textContent = '';
			document.getElementById('notice').className = '';
		});
	};
	await attempt('offline', args.c.extension, 'webrtc');
	await pa.shot('call-offline-light-desktop');
	await attempt('unknown', args.unknown, 'webrtc');
	await attempt('pbx', args.c.extension, 'pbx');
	return out;
};

/*
 * An admin creates a user in the console, the user logs in elsewhere;
 * the admin edits and then deletes them, and their page is logged out.
 * The live cards, the export and the backups either work or say they are
 * not available.
 */
scenarios.admin = async (run, args) => {
	/* The routes other work adds may be missing on this server. */
	for (const s of [404, 501, 502, 503])
		run.allowHttp.push([s, new RegExp('^/protected/admin/' +
		    '(stats|health|active-calls|export/|backup)')]);
	run.allowHttp.push([401, /^\/protected\//]);
	const adm = await run.person('admin');
	await adm.open();
	await adm.login(args.admin.username, args.admin.password);
	await adm.view('admin');
	await adm.until('users listed', () =>
	    document.querySelectorAll('#users tbody tr').length > 0);
	const n = args.newUser;
	await adm.page.fill('#uf-username', n.username);
	await adm.page.fill('#uf-email', n.email);
	await adm.page.fill('#uf-extension', n.extension);
	await adm.page.fill('#uf-password', n.password);
	await adm.page.click('#uf-submit');
	const created = await adm.until('created', (u) =>
	    !!document.querySelector(`#users tr[data-username="${u}"]`) &&
	    document.getElementById('notice').textContent, n.username);

	/* The new user logs in, in a browser of their own. */
	const pu = await run.person('user');
	await pu.open();
	const u = await pu.login(n.username, n.password);
	const userView = await pu.eval(() => ({
		phone: !document.getElementById('view-phone').hidden,
		adminTab: !document.getElementById('tab-admin').hidden,
		ext: document.getElementById('me-ext').textContent,
	}));

	/* Edit: a new email. */
	run.step = 'admin: edit';
	await adm.page.click(`#users tr[data-username="${n.username}"] ` +
	    'button[data-act="edit"]');
	await adm.page.fill('#uf-email', 'changed-' + n.email);
	await adm.page.click('#uf-submit');
	await adm.until('edited', (email) => Array.from(
	    document.querySelectorAll('#users td')).some((td) =>
	    td.textContent === email), 'changed-' + n.email);

	/* The live cards, whatever this server has of them. */
	await adm.until('live cards settled', () => ['stats-card',
	    'health-card', 'active-card'].every((id) => document
	    .querySelector(`#${id} .state`).textContent !== ''));
	const cards = await adm.eval(() => Object.fromEntries(['stats-card',
	    'health-card', 'active-card', 'admin-backups'].map((id) => [id, {
		state: document.querySelector(`#${id} .state`).textContent,
		kind: document.querySelector(`#${id} .state`).className,
	}])));
	await adm.shot('admin-user-edited-light-desktop');

	/* The export: a download when the server has the route. */
	run.step = 'admin: export';
	await adm.page.selectOption('#ex-format', 'csv');
	await adm.page.fill('#ex-tz', 'Europe/Paris');
	let download = null;
	if (args.exportExpected) {
		const [d] = await Promise.all([
			adm.page.waitForEvent('download',
			    { timeout: run.left() }),
			adm.page.click('#ex-submit'),
		]);
		const path = await d.path();
		const { readFileSync } = await import('node:fs');
		const text = readFileSync(path, 'utf8');
		download = { name: d.suggestedFilename(),
		    first_line: text.split(/\r?\n/)[0], bytes: text.length };
	} else {
		await adm.page.click('#ex-submit');
	}
	const exportState = await adm.until('export settled', () => {
		const s = document.querySelector('#admin-export .state');
		return /Downloaded|not available|failed/.test(s.textContent) &&
		    { text: s.textContent, kind: s.className };
	});

	/* Delete, through the confirmation dialog; the user's page is
	 * logged out, in words. */
	run.step = 'admin: delete';
	await adm.page.click(`#users tr[data-username="${n.username}"] ` +
	    'button[data-act="delete"]');
	await adm.until('confirm dialog', () =>
	    document.getElementById('confirm').open);
	const confirmText = await adm.text('#confirm-text');
	await adm.page.click('#confirm-yes');
	await adm.until('deleted', (name) =>
	    !document.querySelector(`#users tr[data-username="${name}"]`),
	    n.username);
	const gone = await pu.until('the deleted user is logged out', () =>
	    window.switchboard.state === 'logged-out' &&
	    document.getElementById('notice').textContent);
	return { created, user: u, userView, cards, download,
	    export: exportState, confirm: confirmText, gone };
};

/*
 * The live cards, the export and the backups against a real system whose
 * data the test seeded (args.expect says what the cards should show):
 * the active call args.callId is ended from the console, the call logs
 * are exported in a time zone, a backup is made, downloaded and restored.
 * The Python test checks the database after each.
 */
scenarios.admin_live = async (run, args) => {
	const { readFileSync } = await import('node:fs');
	const { join } = await import('node:path');
	const adm = await run.person('admin');
	const asked = [];
	const types = {};
	adm.page.on('request', (req) => {
		const url = new URL(req.url());
		if (url.pathname.startsWith('/protected/admin/'))
			asked.push(`${req.method()} ${url.pathname}${url.search}`);
	});
	adm.page.on('response', (r) => {
		const path = new URL(r.url()).pathname;
		if (/\/(export\/call-logs|backup\/download\/)/.test(path))
			types[path] = r.headers()['content-type'];
	});
	await adm.open();
	await adm.login(args.admin.username, args.admin.password);
	await adm.until('socket open', () => window.switchboard.link === 'open');
	await adm.view('admin');
	/* The cards refresh every few seconds: wait for one that counts this
	 * page's own socket and lists the call. */
	run.step = 'admin: live cards';
	await adm.until('cards show the seeded system', (x) => {
		const dd = Array.from(document.querySelectorAll('#stats dt'))
		    .find((dt) => dt.textContent === 'Open sockets');
		return dd && dd.nextElementSibling.textContent ===
		    String(x.sockets) &&
		    document.querySelectorAll('#health dt').length > 0 &&
		    !!document.querySelector(`#active li[data-id="${x.id}"]`);
	}, { sockets: args.expect.sockets, id: args.callId });
	const cards = await adm.eval(() => ({
		stats: Array.from(document.querySelectorAll('#stats dt'),
		    (dt) => [dt.textContent,
		    dt.nextElementSibling.textContent]),
		health: Array.from(document.querySelectorAll('#health dt'),
		    (dt) => [dt.textContent,
		    dt.nextElementSibling.textContent]),
		active: Array.from(document.querySelectorAll('#active li'),
		    (li) => [li.dataset.id, li.textContent]),
		states: Object.fromEntries(['stats-card', 'health-card',
		    'active-card'].map((id) => [id, document.querySelector(
		    `#${id} .state`).className])),
	}));
	await adm.shot('admin-live-light-desktop');

	/* End the active call, through the confirmation. */
	run.step = 'admin: end the call';
	await adm.page.click(`#active li[data-id="${args.callId}"] ` +
	    'button[data-act="terminate"]');
	await adm.until('confirm', () =>
	    document.getElementById('confirm').open);
	const terminateAsk = await adm.text('#confirm-text');
	await adm.page.click('#confirm-yes');
	const terminated = await adm.until('call ended', () =>
	    /terminated/.test(document.getElementById('notice').textContent) &&
	    document.getElementById('notice').textContent);
	await adm.until('the call leaves the list', (id) =>
	    !document.querySelector(`#active li[data-id="${id}"]`),
	    args.callId);

	/* Export, CSV in a zone. */
	run.step = 'admin: export';
	await adm.page.selectOption('#ex-format', 'csv');
	await adm.page.fill('#ex-tz', args.tz);
	const [d] = await Promise.all([adm.page.waitForEvent('download',
	    { timeout: run.left() }), adm.page.click('#ex-submit')]);
	const exported = { name: d.suggestedFilename(),
	    text: readFileSync(await d.path(), 'utf8'),
	    state: await adm.until('export done', () => {
		const s = document.querySelector('#admin-export .state');
		return /Downloaded/.test(s.textContent) && s.textContent;
	    }) };

	/* Create a backup: it completes and is listed. */
	run.step = 'admin: create a backup';
	const before = await adm.eval(() => Array.from(
	    document.querySelectorAll('#backups li'), (li) => li.dataset.id));
	await adm.page.fill('#bk-name', args.backupName);
	await adm.page.click('#bk-create');
	const created = await adm.until('backup complete', () =>
	    /complete/.test(document.getElementById('notice').textContent) &&
	    document.getElementById('notice').textContent);
	const made = await adm.until('backup listed', (old) => {
		const li = Array.from(document.querySelectorAll('#backups li'))
		    .find((x) => !old.includes(x.dataset.id));
		return li && { id: li.dataset.id,
		    text: li.querySelector('span').textContent };
	}, before);
	/* Python changes the database after the backup. */
	await run.checkpoint('backed-up', { id: made.id });

	/* Download it: the SQLite database itself. */
	run.step = 'admin: download the backup';
	const sel = `#backups li[data-id="${made.id}"] `;
	const [b] = await Promise.all([adm.page.waitForEvent('download',
	    { timeout: run.left() }),
	    adm.page.click(sel + 'button[data-act="download"]')]);
	const file = b.suggestedFilename();
	await b.saveAs(join(run.shots, 'backup-download'));
	const downloaded = await adm.until('download reported', () =>
	    /^Downloaded/.test(document.getElementById('notice').textContent) &&
	    document.getElementById('notice').textContent);

	/* Restore it, through the confirmation. */
	run.step = 'admin: restore';
	await adm.page.click(sel + 'button[data-act="restore"]');
	await adm.until('confirm', () =>
	    document.getElementById('confirm').open);
	const restoreAsk = await adm.text('#confirm-text');
	await adm.page.click('#confirm-yes');
	const restored = await adm.until('restore reported', () =>
	    /Restore/.test(document.getElementById('notice').textContent) &&
	    document.getElementById('notice').textContent);
	const after = await adm.until('backups listed again', (n) => {
		const ids = Array.from(document.querySelectorAll(
		    '#backups li'), (li) => li.dataset.id);
		return ids.length > n && ids;
	}, before.length + 1);
	return { cards, terminate_ask: terminateAsk, terminated,
	    export: exported, created, backup: made,
	    backup_file: file, downloaded, restore_ask: restoreAsk, restored,
	    backups_after: after, types, asked };
};

/*
 * The relay goes away under a logged-in page: the page says it is
 * reconnecting, events written meanwhile wait in the stream, and once the
 * relay is back the page catches up with them through since/epoch.
 */
scenarios.reconnect = async (run, args) => {
	/* The upgrade fails while the relay is down. */
	run.allowHttp.push([502, /^\/ws$/], [503, /^\/ws$/]);
	run.allowConsole.push(/WebSocket connection to .* failed/);
	const pa = await run.person('a');
	await pa.open();
	await pa.login(args.a.username, args.a.password);
	const seqBefore = await pa.eval(() => window.switchboard.lastSeq);
	await run.checkpoint('stop-relay');
	await pa.until('reconnecting shown', () =>
	    window.switchboard.link === 'reconnecting' &&
	    /reconnecting/.test(document.getElementById('link').textContent));
	await pa.shot('reconnecting-light-desktop');
	const down = await pa.text('#link');
	/* Python writes events while the page cannot hear them. */
	const missed = await run.checkpoint('while-down');
	await pa.until('connected again', () =>
	    window.switchboard.link === 'open');
	const events = await pa.until('missed events replayed', (ext) => {
		const ev = window.switchboard.events.filter((e) =>
		    e.replayed && (e.extension === ext || e.from === ext));
		return ev.some((e) => e.status === 'busy') && ev;
	}, missed.extension);
	await pa.until('the list shows it', (ext) => {
		const li = document.querySelector(
		    `#online li[data-ext="${ext}"]`);
		return li && /busy/.test(li.textContent);
	}, missed.extension);
	const notice = await pa.until('caught-up notice', () =>
	    /caught up/.test(document.getElementById('notice').textContent) &&
	    document.getElementById('notice').textContent);
	const up = await pa.text('#link');
	return { seq_before: seqBefore, down, up, notice,
	    replayed: events.map((e) => ({ type: e.type, seq: e.seq,
	    status: e.status })),
	    seq_after: await pa.eval(() => window.switchboard.lastSeq) };
};

/*
 * Only the keyboard: Tab to the login form, type, Enter; Tab to the
 * dialler, type the extension, Enter; the callee answers from the
 * keyboard too (the focus is put on Accept); the caller hangs up with
 * Enter on the button that took the focus.
 */
scenarios.keyboard = async (run, args) => {
	const pb = await run.person('b');
	const pa = await run.person('a');
	await pb.open();
	await pb.login(args.b.username, args.b.password);
	await pa.open();
	const kb = pa.page.keyboard;
	const trail = [];
	const tabTo = async (p, id, max = 20) => {
		for (let i = 0; i < max; i++) {
			await p.page.keyboard.press('Tab');
			const at = await p.eval(() =>
			    document.activeElement.id ||
			    document.activeElement.tagName);
			trail.push(`${p.who}:${at}`);
			if (at === id)
				return i + 1;
		}
		throw new Error(`${p.who}: Tab never reached #${id}`);
	};
	const focusVisible = (p) => p.eval(() => {
		const s = getComputedStyle(document.activeElement);
		return s.outlineStyle !== 'none' &&
		    parseFloat(s.outlineWidth) > 0;
	});
	run.step = 'a: tab to the login form';
	const tabsToLogin = await tabTo(pa, 'login-username');
	const ringVisible = await focusVisible(pa);
	await kb.type(args.a.username);
	await kb.press('Tab');
	await kb.type(args.a.password);
	await kb.press('Enter');
	await pa.until('logged in', () => window.switchboard.link === 'open');
	run.step = 'a: tab to the dialler';
	const tabsToDial = await tabTo(pa, 'dial-ext');
	await kb.type(args.b.extension);
	await kb.press('Enter');
	await pb.until('B rings, focus on Accept', () =>
	    window.switchboard.state === 'ringing' &&
	    document.activeElement.id === 'accept');
	await pb.page.keyboard.press('Enter');
	await pa.until('connected', () =>
	    window.switchboard.state === 'connected');
	const aFocus = await pa.eval(() => document.activeElement.id);
	if (aFocus !== 'hangup')
		await tabTo(pa, 'hangup');
	await kb.press('Enter');
	await pb.until('B sees the end', () =>
	    window.switchboard.state === 'idle' && window.switchboard.lastCall);
	const after = await pa.eval(() => ({
		state: window.switchboard.state,
		focus: document.activeElement.id,
		text: document.getElementById('call-status').textContent,
	}));
	return { tabs_to_login: tabsToLogin, tabs_to_dial: tabsToDial,
	    focus_ring_visible: ringVisible, focus_after_connect: aFocus,
	    after, trail };
};

/*
 * Each main screen in both themes, at desktop and phone width: a
 * screenshot, and an axe-core scan with no serious or critical
 * violation.
 */
scenarios.screens = async (run, args) => {
	for (const s of [404, 501, 502, 503])
		run.allowHttp.push([s, /^\/protected\/admin\//]);
	const scans = [];
	let paging = null;
	for (const theme of ['light', 'dark'])
		for (const [size, viewport] of [['desktop', DESKTOP_VIEWPORT],
		    ['phone', PHONE_VIEWPORT]]) {
			const tag = `${theme}-${size}`;
			const p = await run.person(tag, { theme, viewport,
			    axe: true });
			await p.open();
			const applied = await p.eval(() =>
			    document.documentElement.dataset.theme);
			if (applied !== theme)
				throw new Error(`${tag}: theme ${applied}`);
			await p.shot(`login-${tag}`);
			scans.push(await p.axe(`login-${tag}`));
			await p.login(args.admin.username, args.admin.password);
			await p.until('someone online', () =>
			    document.querySelectorAll('#online li').length > 0);
			await p.shot(`phone-${tag}`);
			scans.push(await p.axe(`phone-${tag}`));
			await p.view('history');
			await p.until('history loaded', () =>
			    document.querySelectorAll('#history tbody tr')
			    .length > 0);
			await p.shot(`history-${tag}`);
			scans.push(await p.axe(`history-${tag}`));
			if (!paging)
				paging = await pages(p);
			await p.view('admin');
			await p.until('admin loaded', () =>
			    document.querySelectorAll('#users tbody tr')
			    .length > 0 && document.querySelector(
			    '#stats-card .state').textContent !== '');
			await p.shot(`admin-${tag}`);
			scans.push(await p.axe(`admin-${tag}`));
			/* No horizontal scroll at phone width. */
			if (size === 'phone') {
				const w = await p.eval(() =>
				    document.documentElement.scrollWidth);
				if (w > viewport.width + 1)
					throw new Error(`${tag}: page is ` +
					    `${w} px ` +
					    `wide at ${viewport.width}`);
			}
			await p.eval(() => window.switchboard.logout());
			await p.context.close();
		}
	return { scans, paging };
};

/* Older and Newer through the history: what each page shows. */
async function pages(p) {
	const look = () => p.eval(() => ({
		rows: Array.from(document.querySelectorAll('#history tbody tr'),
		    (tr) => tr.dataset.channel),
		page: document.getElementById('history-page').textContent,
		newer: !document.getElementById('history-newer').disabled,
		older: !document.getElementById('history-older').disabled,
	}));
	const first = await look();
	if (!first.older)
		return { first };
	await p.page.click('#history-older');
	await p.until('page 2', () => document.getElementById('history-page')
	    .textContent === 'Page 2' && !document.getElementById('history')
	    .closest('.panel').querySelector('#history-state')
	    .textContent.startsWith('Updating'));
	const second = await look();
	await p.page.click('#history-newer');
	await p.until('page 1 again', () => document.getElementById(
	    'history-page').textContent === 'Page 1');
	return { first, second, back: await look() };
}

/*
 * Registration through the form: a taken username is refused in words,
 * then a new account is created and logged in, and stays logged in
 * across a reload.
 */
scenarios.register = async (run, args) => {
	run.allowHttp.push([409, /^\/api\/register$/]);
	const p = await run.person('new');
	/* The old phone page leads here. */
	run.step = 'new: open /phone.html';
	await p.page.goto(run.base + '/phone.html', { timeout: run.left() });
	await p.page.waitForURL(run.base + '/', { timeout: run.left() });
	await p.until('the client script', () => !!window.switchboard);
	const redirected = p.page.url();
	await p.page.click('#register summary');
	const fill = async (r) => {
		await p.page.fill('#reg-username', r.username);
		await p.page.fill('#reg-email', r.email);
		await p.page.fill('#reg-extension', r.extension);
		await p.page.fill('#reg-password', r.password);
		await p.page.click('#register-button');
	};
	await fill(Object.assign({}, args.fresh, { username: args.taken }));
	const refused = await p.until('refused in words', () =>
	    document.getElementById('notice').className === 'error' &&
	    document.getElementById('notice').textContent);
	await fill(args.fresh);
	await p.until('registered and logged in', () =>
	    window.switchboard.link === 'open');
	const user = await p.eval(() => window.switchboard.user);
	const notice = await p.text('#notice');
	/* A reload keeps the session. */
	run.step = 'reload';
	await p.page.reload();
	await p.until('the client script', () => !!window.switchboard);
	await p.until('still logged in', () =>
	    window.switchboard.link === 'open');
	const reloaded = await p.eval(() => window.switchboard.user.username);
	return { redirected, refused, user, notice, reloaded };
};

const opts = parseArgs(process.argv.slice(2));
const fn = scenarios[opts.name];
if (!fn)
	usage(`unknown scenario ${opts.name}`);
scenario(opts, (run) => fn(run, opts.args));
