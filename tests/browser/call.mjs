#!/usr/bin/env node
/*
 * Two people, two browsers, one call, in real headless Chromium:
 *
 *     PHONE_A_USER=.. PHONE_A_PASSWORD=.. PHONE_B_USER=.. PHONE_B_PASSWORD=.. \
 *         node tests/browser/call.mjs http://127.0.0.1:PORT \
 *         [--hold-ms 2000] [--screenshots DIR] [--chromium PATH]
 *
 * Each person has a browser context of their own on BASE/phone.html. B
 * logs in, then A; B must see A come online through a presence event. A
 * calls B by extension, B accepts, and the pages exchange offer, answer and
 * ICE candidates through the relay until both peer connections are
 * connected and audio (Chromium's fake microphone) arrives on both sides.
 * After the hold A hangs up and B must see the call end.
 *
 * Passwords come from the environment, never the command line. Prints one
 * JSON line and exits 0, or prints {"ok":false,"reason":...} and exits 1.
 * Everything is over within 60 s.
 */
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const TOTAL_MS = 60000;
const started = Date.now();
let step = 'start';
let browser = null;
const pages = {};

function usage(text) {
	process.stderr.write(`call.mjs: ${text}\n`);
	process.exit(2);
}

function parseArgs(argv) {
	const o = { base: null, holdMs: 2000, shots: null,
	    chromium: '/usr/bin/chromium' };
	for (let i = 0; i < argv.length; i++) {
		const a = argv[i];
		if (a === '--hold-ms')
			o.holdMs = Number(argv[++i]);
		else if (a === '--screenshots')
			o.shots = argv[++i];
		else if (a === '--chromium')
			o.chromium = argv[++i];
		else if (!a.startsWith('--') && o.base === null)
			o.base = a.replace(/\/+$/, '');
		else
			usage(`unknown argument ${a}`);
	}
	if (!o.base)
		usage('BASE URL required');
	if (!Number.isFinite(o.holdMs) || o.holdMs < 0)
		usage('--hold-ms: not a number');
	for (const v of ['PHONE_A_USER', 'PHONE_A_PASSWORD', 'PHONE_B_USER',
	    'PHONE_B_PASSWORD'])
		if (!process.env[v])
			usage(`${v} not set`);
	return o;
}

function left() {
	return Math.max(1, TOTAL_MS - (Date.now() - started));
}

/* What both pages looked like when it went wrong. */
async function pageState(page) {
	try {
		return await page.evaluate(() => ({
			state: window.phone.state,
			connected: window.phone.connected,
			current: window.phone.current,
			lastCall: window.phone.lastCall,
			counts: window.phone.counts,
			events: window.phone.events.slice(-15),
			message: document.getElementById('message').textContent,
		}));
	} catch (e) {
		return { unavailable: String(e.message || e) };
	}
}

let failing = false;

async function fail(reason) {
	if (failing)
		return;
	failing = true;
	const out = { ok: false, step, reason: String(reason),
	    elapsed_ms: Date.now() - started };
	for (const [who, p] of Object.entries(pages)) {
		out[who] = await Promise.race([pageState(p.page),
		    new Promise((r) => setTimeout(() => r('no answer'), 2000))]);
		out[who].console = p.problems;
	}
	process.stdout.write(JSON.stringify(out) + '\n');
	if (browser)
		await Promise.race([browser.close().catch(() => {}),
		    new Promise((r) => setTimeout(r, 3000))]);
	process.exit(1);
}

const overall = setTimeout(() => fail(`no result within ${TOTAL_MS} ms`),
    TOTAL_MS);

/* Wait until fn(arg) is truthy in page; its value. */
async function until(who, what, fn, arg) {
	step = `${who}: ${what}`;
	const h = await pages[who].page.waitForFunction(fn, arg,
	    { timeout: left(), polling: 50 });
	return h.jsonValue();
}

async function run(who, fn, arg) {
	return pages[who].page.evaluate(fn, arg);
}

async function shot(opts, who, name) {
	if (!opts.shots)
		return;
	await pages[who].page.screenshot({ path: join(opts.shots,
	    `${who}-${name}.png`) });
}

async function openPhone(opts, who) {
	const context = await browser.newContext({
		permissions: ['microphone'],
		viewport: { width: 900, height: 640 },
	});
	const page = await context.newPage();
	const problems = [];
	page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
	/* A failed load is reported below with its URL. */
	page.on('console', (m) => {
		if (m.type() === 'error' &&
		    !m.text().startsWith('Failed to load resource'))
			problems.push(`console: ${m.text()}`);
	});
	/* The browser's own favicon probe may 404; nothing else may. */
	page.on('response', (r) => {
		if (r.status() >= 400 &&
		    new URL(r.url()).pathname !== '/favicon.ico')
			problems.push(`HTTP ${r.status()}: ${r.request().method()} ` +
			    new URL(r.url()).pathname);
	});
	page.on('requestfailed', (r) => problems.push(`failed: ` +
	    `${r.method()} ${new URL(r.url()).pathname}: ` +
	    `${r.failure() ? r.failure().errorText : ''}`));
	pages[who] = { page, problems };
	step = `${who}: open phone.html`;
	const r = await page.goto(`${opts.base}/phone.html`,
	    { timeout: left() });
	if (!r || r.status() !== 200)
		throw new Error(`phone.html: HTTP ${r ? r.status() : 'none'}`);
	await until(who, 'page script', () => !!window.phone);
}

async function login(who, user, password) {
	step = `${who}: login`;
	const u = await run(who, ([n, p]) => window.phone.login(n, p),
	    [user, password]);
	await until(who, 'WebSocket open', () => window.phone.connected);
	return u;
}

function stats(who) {
	return run(who, () => window.phone.stats());
}

async function main() {
	const opts = parseArgs(process.argv.slice(2));
	if (opts.shots)
		mkdirSync(opts.shots, { recursive: true });
	step = 'launch chromium';
	browser = await chromium.launch({
		executablePath: opts.chromium,
		headless: true,
		timeout: left(),
		args: [
			'--no-sandbox',
			'--disable-gpu',
			'--disable-quic',
			'--no-first-run',
			'--disable-background-networking',
			'--disable-component-update',
			'--disable-sync',
			'--use-fake-ui-for-media-stream',
			'--use-fake-device-for-media-stream',
			/* A host with no interface but lo still connects. */
			'--allow-loopback-in-peer-connection',
		],
	});

	await openPhone(opts, 'b');
	await openPhone(opts, 'a');
	await shot(opts, 'a', 'login');

	const b = await login('b', process.env.PHONE_B_USER,
	    process.env.PHONE_B_PASSWORD);
	const bOnlineAt = Date.now();
	const a = await login('a', process.env.PHONE_A_USER,
	    process.env.PHONE_A_PASSWORD);

	/* B hears of A's arrival as an event, not only from the list. */
	await until('b', `presence event for ${a.extension}`, (ext) =>
	    window.phone.events.some((e) => e.type === 'user_status_changed' &&
	    (e.extension === ext || e.from === ext) && e.status === 'online') &&
	    window.phone.online.some((u) => u.extension === ext), a.extension);
	const presenceMs = Date.now() - bOnlineAt;
	await until('b', 'A listed on the page', (name) =>
	    Array.from(document.querySelectorAll('#online li .name')).some(
	    (n) => n.textContent === name), a.username);
	await until('a', `B online for A`, (ext) =>
	    window.phone.online.some((u) => u.extension === ext), b.extension);

	step = 'a: call';
	const tCall = Date.now();
	const callId = await run('a', (ext) => window.phone.call(ext),
	    b.extension);
	if (typeof callId !== 'string' || !callId.startsWith('webrtc-call-'))
		throw new Error(`call id ${JSON.stringify(callId)}`);
	await until('b', 'incoming call', (id) =>
	    window.phone.state === 'ringing' &&
	    window.phone.current.id === id, callId);
	step = 'a: ringing';
	if (await run('a', () => window.phone.state) !== 'calling')
		throw new Error('a: the call ended before it was answered');
	const ringMs = Date.now() - tCall;
	await shot(opts, 'b', 'ringing');

	step = 'b: accept';
	const tAccept = Date.now();
	await run('b', () => window.phone.accept());
	/* A page that gave up (no audio path, a failed step) is idle again. */
	for (const who of ['a', 'b']) {
		const s = await until(who, 'connected', () =>
		    ['connected', 'idle'].includes(window.phone.state) &&
		    window.phone.state);
		if (s !== 'connected')
			throw new Error(`${who} gave up: ` + JSON.stringify(
			    await run(who, () => window.phone.lastCall)));
	}
	const connectedMs = Date.now() - tAccept;

	/* Audio both ways: each side's inbound RTP carries bytes. */
	const flowing = async (who) => {
		for (;;) {
			step = `${who}: inbound audio`;
			const s = await stats(who);
			if (s && s.inbound.bytesReceived > 0)
				return s;
			if (left() <= 1)
				throw new Error(`${who}: no inbound audio`);
			await new Promise((r) => setTimeout(r, 50));
		}
	};
	await Promise.all([flowing('a'), flowing('b')]);
	const audioMs = Date.now() - tAccept;

	step = 'hold';
	await new Promise((r) => setTimeout(r, opts.holdMs));
	const [sa, sb] = await Promise.all([stats('a'), stats('b')]);
	const pageTimes = await Promise.all(['a', 'b'].map((w) =>
	    run(w, () => window.phone.current)));
	await shot(opts, 'a', 'connected');
	await shot(opts, 'b', 'connected');

	step = 'a: hang up';
	const hangup = await run('a', () => window.phone.hangup());
	const last = await until('b', 'call ended', (id) =>
	    window.phone.state === 'idle' && window.phone.lastCall &&
	    window.phone.lastCall.id === id && window.phone.lastCall, callId);
	const aLast = await run('a', () => window.phone.lastCall);
	await until('a', 'duration shown', () =>
	    /\d:\d\d\.$/.test(document.getElementById('call-status')
	    .textContent));
	/* Each page's call history, when the server keeps one. */
	const history = async (who) => {
		step = `${who}: call history`;
		for (;;) {
			const logs = await run(who, () => window.phone.refreshLogs());
			if (logs === null)
				return null;
			const l = logs.find((x) => x.channel === callId);
			if (l && l.status === 'ended')
				return { status: l.status, duration: l.duration,
				    shown: await run(who, (id) => !!document
				    .querySelector(`#logs li[data-channel="${id}"]`),
				    callId) };
			if (left() <= 1)
				throw new Error(`${who}: call not in the history`);
			await new Promise((r) => setTimeout(r, 100));
		}
	};
	const logs = { a: await history('a'), b: await history('b') };
	await shot(opts, 'a', 'ended');
	await shot(opts, 'b', 'ended');

	const counts = {
		a: await run('a', () => window.phone.counts),
		b: await run('b', () => window.phone.counts),
	};
	const problems = [...pages.a.problems.map((p) => `a: ${p}`),
	    ...pages.b.problems.map((p) => `b: ${p}`)];
	if (problems.length > 0)
		throw new Error(`page errors: ${problems.join('; ')}`);

	const side = (s, t, l) => ({
		state: s.connectionState,
		ice: s.iceConnectionState,
		bytes_received: s.inbound.bytesReceived,
		packets_received: s.inbound.packetsReceived,
		bytes_sent: s.outbound.bytesSent,
		pair: s.pair,
		page_connect_ms: t.connectedAt - t.acceptedAt,
		end: l.end,
	});
	const out = {
		ok: true,
		call_id: callId,
		a: { user: a.username, extension: a.extension,
		    ...side(sa, pageTimes[0], aLast) },
		b: { user: b.username, extension: b.extension,
		    ...side(sb, pageTimes[1], last) },
		hangup,
		logs,
		ms: { presence: presenceMs, ring: ringMs, connected: connectedMs,
		    audio: audioMs, hold: opts.holdMs,
		    total: Date.now() - started },
		signalling: counts,
	};
	clearTimeout(overall);
	if (failing)
		return;
	step = 'close';
	await Promise.race([browser.close(),
	    new Promise((r) => setTimeout(r, 5000))]);
	process.stdout.write(JSON.stringify(out) + '\n');
	process.exit(0);
}

main().catch((e) => fail(e && e.message ? e.message : e));
