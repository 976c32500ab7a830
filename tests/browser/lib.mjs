/*
 * What the browser scenarios share: Debian's Chromium launched through
 * playwright-core with fake media devices, a person per browser context
 * on the web client, waits bounded by the scenario's deadline, screenshots,
 * an axe-core scan, and checkpoints where the Python test acts on the
 * system (stop the relay, write through REST) before the page goes on.
 *
 * Protocol with tests/browser/driver.py: a line `CHECKPOINT <name> <json>`
 * on stdout waits for one line on stdin; the last stdout line is the
 * scenario's JSON result ({"ok": true, ...} or {"ok": false, "step",
 * "reason", ...}).
 */
import { chromium } from 'playwright-core';
import { createInterface } from 'node:readline';
import { mkdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
export const AXE = join(HERE, 'node_modules', 'axe-core', 'axe.min.js');

export const PHONE_VIEWPORT = { width: 390, height: 844 };
export const DESKTOP_VIEWPORT = { width: 1100, height: 760 };

export class Run {
	constructor(opts) {
		this.base = opts.base;
		this.shots = opts.shots || null;
		this.deadlineMs = opts.deadlineMs || 60000;
		this.chromium = opts.chromium || '/usr/bin/chromium';
		this.started = Date.now();
		this.step = 'start';
		this.browser = null;
		this.people = {};
		this.screenshots = [];
		/* [status, path regexp] the scenario expects */
		this.allowHttp = [];
		this.allowConsole = []; /* regexps */
		this.lines = null;
		if (this.shots)
			mkdirSync(this.shots, { recursive: true });
	}

	left() {
		return Math.max(1, this.deadlineMs - this.ms());
	}

	ms() {
		return Date.now() - this.started;
	}

	async launch() {
		this.step = 'launch chromium';
		this.browser = await chromium.launch({
			executablePath: this.chromium,
			headless: true,
			timeout: this.left(),
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
				'--autoplay-policy=no-user-gesture-required',
				/* A host with only lo still connects. */
				'--allow-loopback-in-peer-connection',
			],
		});
	}

	/* A person in a browser context of their own, on the client. */
	async person(who, opts = {}) {
		const context = await this.browser.newContext({
			permissions: ['microphone'],
			viewport: opts.viewport || DESKTOP_VIEWPORT,
			colorScheme: opts.theme || 'light',
			acceptDownloads: true,
			/* Only to inject axe-core; the page's own CSP stays
			 * in force for everything it loads. */
			bypassCSP: !!opts.axe,
		});
		const page = await context.newPage();
		const p = new Person(this, who, context, page);
		this.people[who] = p;
		return p;
	}

	async close() {
		if (this.browser)
			await Promise.race([
				this.browser.close().catch(() => {}),
				new Promise((r) => setTimeout(r, 5000)),
			]);
	}

	/* Hand over to the Python test; resolves with its answer. */
	async checkpoint(name, data) {
		this.step = `checkpoint ${name}`;
		if (!this.lines)
			this.lines = createInterface({ input: process.stdin })[
			    Symbol.asyncIterator]();
		process.stdout.write(`CHECKPOINT ${name} ` +
		    JSON.stringify(data || {}) + '\n');
		const r = await Promise.race([this.lines.next(),
		    new Promise((res) => setTimeout(() =>
		    res({ timeout: true }), this.left()))]);
		if (r.timeout || r.done)
			throw new Error(`no answer to checkpoint ${name}`);
		const answer = JSON.parse(r.value);
		if (answer.error)
			throw new Error(`checkpoint ${name}: ${answer.error}`);
		return answer;
	}

	/* Page errors, and HTTP errors the scenario did not expect. */
	problems() {
		const out = [];
		for (const [who, p] of Object.entries(this.people))
			for (const x of p.problems) {
				if (x.http && this.allowHttp.some(([s, re]) =>
				    s === x.http && re.test(x.path)))
					continue;
				if (x.console && this.allowConsole.some((re) =>
				    re.test(x.console)))
					continue;
				out.push(`${who}: ${x.text}`);
			}
		return out;
	}
}

export class Person {
	constructor(run, who, context, page) {
		this.run = run;
		this.who = who;
		this.context = context;
		this.page = page;
		this.problems = [];
		page.on('pageerror', (e) => this.problems.push({
		    text: `pageerror: ${e.message}` }));
		page.on('console', (m) => {
			/* A failed load: 'response' reports it, with URL. */
			if (m.type() === 'error' &&
			    !m.text().startsWith('Failed to load resource'))
				this.problems.push({ console: m.text(),
				    text: `console: ${m.text()}` });
		});
		page.on('response', (r) => {
			const path = new URL(r.url()).pathname;
			if (r.status() >= 400)
				this.problems.push({ http: r.status(), path,
				    text: `HTTP ${r.status()}: ` +
				    `${r.request().method()} ${path}` });
		});
	}

	async open(path = '/') {
		this.run.step = `${this.who}: open ${path}`;
		const r = await this.page.goto(this.run.base + path,
		    { timeout: this.run.left() });
		if (!r || r.status() !== 200)
			throw new Error(`${path}: HTTP ` +
			    `${r ? r.status() : 'none'}`);
		await this.until('the client script', () =>
		    !!window.switchboard);
	}

	/* Wait until fn(arg) is truthy in the page; its value. */
	async until(what, fn, arg) {
		this.run.step = `${this.who}: ${what}`;
		const h = await this.page.waitForFunction(fn, arg,
		    { timeout: this.run.left(), polling: 50 });
		return h.jsonValue();
	}

	eval(fn, arg) {
		return this.page.evaluate(fn, arg);
	}

	text(selector) {
		return this.page.locator(selector).innerText();
	}

	/* Log in through the form, as a person does. */
	async login(user, password) {
		this.run.step = `${this.who}: log in as ${user}`;
		await this.page.fill('#login-username', user);
		await this.page.fill('#login-password', password);
		await this.page.click('#login-button');
		await this.until('logged in', () =>
		    window.switchboard.state !== 'logged-out');
		await this.until('socket open', () =>
		    window.switchboard.link === 'open');
		return this.eval(() => window.switchboard.user);
	}

	async view(name) {
		this.run.step = `${this.who}: ${name} view`;
		await this.page.click(`#tab-${name}`);
		await this.until(`${name} view shown`, (v) =>
		    !document.getElementById('view-' + v).hidden, name);
	}

	async shot(name) {
		if (!this.run.shots)
			return;
		const file = `${name}.png`;
		await this.page.screenshot({ path: join(this.run.shots, file),
		    fullPage: true });
		this.run.screenshots.push(file);
	}

	/* axe-core over the page as it is now: the serious and critical
	 * violations, and how many rules passed. */
	async axe(label) {
		this.run.step = `${this.who}: axe ${label}`;
		await this.page.addScriptTag({ path: AXE });
		const r = await this.page.evaluate(async () => {
			const res = await window.axe.run(document, {
				resultTypes: ['violations'],
			});
			return {
				passes: res.passes.length,
				violations: res.violations.map((v) => ({
					id: v.id,
					impact: v.impact,
					help: v.help,
					nodes: v.nodes.slice(0, 5).map((n) =>
					    n.target.join(' ')),
				})),
			};
		});
		return {
			label,
			passes: r.passes,
			violations: r.violations,
			serious: r.violations.filter((v) =>
			    v.impact === 'serious' || v.impact === 'critical'),
		};
	}

	/* What the page looked like, for a failure report. */
	async state() {
		try {
			return await Promise.race([this.page.evaluate(() => ({
				state: window.switchboard.state,
				link: window.switchboard.link,
				current: window.switchboard.current,
				lastCall: window.switchboard.lastCall,
				events: window.switchboard.events.slice(-12),
				notice: document.getElementById('notice')
				    .textContent,
				status: document.getElementById('call-status')
				    .textContent,
			})), new Promise((r) => setTimeout(() =>
			    r({ unavailable: 'no answer' }), 2000))]);
		} catch (e) {
			return { unavailable: String(e.message || e) };
		}
	}
}

/* Run main(run) with a deadline; print one JSON line and exit. */
export async function scenario(opts, main) {
	const run = new Run(opts);
	let done = false;
	const finish = async (out, code) => {
		if (done)
			return;
		done = true;
		process.stdout.write(JSON.stringify(out) + '\n');
		await run.close();
		process.exit(code);
	};
	const fail = async (reason) => {
		const out = { ok: false, step: run.step, reason: String(reason),
		    elapsed_ms: run.ms(), screenshots: run.screenshots };
		for (const [who, p] of Object.entries(run.people)) {
			out[who] = await p.state();
			out[who].problems = p.problems.map((x) => x.text);
		}
		await finish(out, 1);
	};
	const timer = setTimeout(() => fail(`no result within ` +
	    `${run.deadlineMs} ms`), run.deadlineMs);
	try {
		await run.launch();
		const out = await main(run);
		clearTimeout(timer);
		const problems = run.problems();
		if (problems.length > 0)
			throw new Error(`page errors: ${problems.join('; ')}`);
		await finish(Object.assign({ ok: true, elapsed_ms: run.ms(),
		    screenshots: run.screenshots }, out), 0);
	} catch (e) {
		clearTimeout(timer);
		await fail(e && e.message ? e.message : e);
	}
}

export function sleep(ms) {
	return new Promise((r) => setTimeout(r, ms));
}
