/*
 * The admin console: users (create, edit, delete), live statistics, health
 * and active calls, the call-log export and backups.
 *
 * Parts of it stand on routes a server may not have yet (stats, health,
 * export, backups, active calls). Each part says so in words when its
 * route answers 404, 501, 502 or 503, and the rest of the console works.
 */

import { saveBlob } from './api.js';

const ADMIN = '/protected/admin/';
const LIVE_MS = 5000;
const BACKUP_POLL_MS = 1000;

/* The words for a part whose route is missing or whose service is down. */
function absent(what, e) {
	return what + ' is not available on this server (' + e.message + ').';
}

function bytes(n) {
	if (typeof n !== 'number')
		return String(n);
	const units = ['B', 'KB', 'MB', 'GB', 'TB'];
	let i = 0;
	while (n >= 1024 && i < units.length - 1) {
		n /= 1024;
		i++;
	}
	return (i ? n.toFixed(1) : String(n)) + ' ' + units[i];
}

function when(t) {
	const d = new Date(t);
	return t && !isNaN(d) ? d.toLocaleString() : '';
}

/* Labels for the stats an admin reads first, in this order; any other
 * figure the server adds follows with its own name. */
const STAT_LABELS = [
	['total_users', 'Users'],
	['online_users', 'Online'],
	['active_calls', 'Active calls'],
	['calls_today', 'Calls today'],
	['ws_connections', 'Open sockets'],
	['uptime', 'Uptime'],
];

export class Admin {
	constructor(api, notice, $) {
		this.api = api;
		this.notice = notice;
		this.$ = $;
		this.visible = false;
		this.timer = null;
		this.poked = null;
		this.users = [];
		this.wired = false;
		this.activeSig = null;
	}

	/* ---- showing and the live refresh ---- */

	show() {
		if (!this.wired)
			this.wire();
		if (this.visible)
			return;
		this.visible = true;
		this.loadUsers();
		this.loadBackups();
		this.live();
		this.timer = setInterval(() => this.live(), LIVE_MS);
	}

	hide() {
		this.visible = false;
		clearInterval(this.timer);
		this.timer = null;
	}

	/* Something changed (presence, a call ended): refresh soon, once. */
	poke() {
		if (!this.visible || this.poked)
			return;
		this.poked = setTimeout(() => {
			this.poked = null;
			if (this.visible) {
				this.live();
				this.loadUsers();
			}
		}, 300);
	}

	state(sectionId, text, kind) {
		const p = this.$(sectionId).querySelector('.state');
		p.textContent = text || '';
		p.className = 'state ' + (kind || 'dim');
	}

	async live() {
		await Promise.all([this.loadStats(), this.loadHealth(),
		    this.loadActive()]);
	}

	list(dlId, pairs) {
		const dl = this.$(dlId);
		dl.replaceChildren(...pairs.flatMap(([k, v]) => {
			const dt = document.createElement('dt');
			dt.textContent = k;
			const dd = document.createElement('dd');
			dd.textContent = v;
			return [dt, dd];
		}));
	}

	async loadStats() {
		try {
			const data = await this.api.get(ADMIN + 'stats');
			const s = data.stats || {};
			const pairs = [];
			for (const [k, label] of STAT_LABELS)
				if (s[k] !== undefined)
					pairs.push([label, String(s[k])]);
			for (const [k, v] of Object.entries(s)) {
				const known = STAT_LABELS.some(([n]) =>
				    n === k);
				const plain = typeof v === 'number' ||
				    typeof v === 'string';
				if (!known && plain)
					pairs.push([k.replace(/_/g, ' '),
					    String(v)]);
			}
			this.list('stats', pairs);
			this.state('stats-card', 'Updated ' +
			    new Date().toLocaleTimeString() + '.');
		} catch (e) {
			this.list('stats', []);
			this.state('stats-card', e.unavailable ?
			    absent('Statistics', e) :
			    'Statistics could not be loaded: ' + e.message +
			    '.',
			    e.unavailable ? 'unavailable' : 'error');
		}
	}

	async loadHealth() {
		try {
			const data = await this.api.get(ADMIN + 'health');
			const h = data.health || data;
			const pairs = [['Overall',
			    String(h.status || 'unknown')]];
			if (h.uptime)
				pairs.push(['Uptime', String(h.uptime)]);
			const services = Object.entries(h.services || {});
			for (const [name, s] of services)
				pairs.push([name, String(s.status) + (s.error ?
				    ': ' + s.error : '')]);
			const db = h.database_health;
			if (db && db.database_size)
				pairs.push(['Database size',
				    String(db.database_size)]);
			this.list('health', pairs);
			this.state('health-card', 'Updated ' +
			    new Date().toLocaleTimeString() + '.');
		} catch (e) {
			this.list('health', []);
			this.state('health-card', e.unavailable ?
			    absent('Health', e) :
			    'Health could not be loaded: ' + e.message + '.',
			    e.unavailable ? 'unavailable' : 'error');
		}
	}

	async loadActive() {
		const ul = this.$('active');
		try {
			const data = await this.api.get(ADMIN +
			    'active-calls');
			const calls = data.active_calls || [];
			/* Redrawn only when it changed: a focused button
			 * stays put between refreshes. */
			const sig = JSON.stringify(calls);
			if (sig !== this.activeSig) {
				this.activeSig = sig;
				ul.replaceChildren(...calls.map((c) =>
				    this.activeItem(c)));
			}
			this.state('active-card', calls.length ? '' :
			    'No call in progress.');
		} catch (e) {
			ul.replaceChildren();
			this.activeSig = null;
			this.state('active-card', e.unavailable ?
			    absent('The list of active calls', e) :
			    'Active calls could not be loaded: ' + e.message +
			    '.', e.unavailable ? 'unavailable' : 'error');
		}
	}

	activeItem(c) {
		const li = document.createElement('li');
		const id = c.channel || String(c.id);
		li.dataset.id = id;
		const name = (u) => (u && (u.username || u.extension)) || '?';
		const text = document.createElement('span');
		text.className = 'grow';
		text.textContent = name(c.caller) + ' → ' + name(c.callee) +
		    ', ' + (c.status || '') + (c.start_time ? ', since ' +
		    when(c.start_time) : '');
		const end = document.createElement('button');
		end.type = 'button';
		end.className = 'small bad';
		end.textContent = 'End';
		end.dataset.act = 'terminate';
		end.setAttribute('aria-label', 'End the call ' +
		    text.textContent);
		li.append(text, end);
		return li;
	}

	async terminate(id) {
		if (!await confirmDialog('End the call ' + id + ' for both ' +
		    'parties?'))
			return;
		try {
			const data = await this.api.post(ADMIN +
			    'terminate-call', { call_id: id });
			this.notice(data.message || 'The call was ended.',
			    'ok');
			this.activeSig = null;
			this.loadActive();
		} catch (e) {
			this.notice(e.unavailable ? absent('Ending calls', e) :
			    'The call could not be ended: ' + e.message + '.',
			    'error');
		}
	}

	/* ---- users ---- */

	async loadUsers() {
		try {
			const data = await this.api.get(ADMIN + 'users');
			this.users = data.users || [];
			this.renderUsers();
			this.state('admin-users', this.users.length + ' user' +
			    (this.users.length === 1 ? '' : 's') + '.');
		} catch (e) {
			this.state('admin-users', 'Users could not be ' +
			    'loaded: ' + e.message + '.', 'error');
		}
	}

	renderUsers() {
		const body = this.$('users').tBodies[0];
		body.replaceChildren(...this.users.map((u) => {
			const tr = document.createElement('tr');
			tr.dataset.id = u.id;
			tr.dataset.username = u.username;
			for (const text of [u.username, u.extension, u.email,
			    u.role, u.status]) {
				const td = document.createElement('td');
				td.textContent = text;
				tr.append(td);
			}
			const td = document.createElement('td');
			td.className = 'actions';
			const edit = document.createElement('button');
			edit.type = 'button';
			edit.className = 'small';
			edit.textContent = 'Edit';
			edit.dataset.act = 'edit';
			edit.setAttribute('aria-label', 'Edit ' + u.username);
			const del = document.createElement('button');
			del.type = 'button';
			del.className = 'small bad';
			del.textContent = 'Delete';
			del.dataset.act = 'delete';
			del.setAttribute('aria-label', 'Delete ' + u.username);
			td.append(edit, del);
			tr.append(td);
			return tr;
		}));
	}

	editUser(u) {
		const $ = this.$;
		$('uf-id').value = u.id;
		$('uf-username').value = u.username;
		$('uf-email').value = u.email;
		$('uf-extension').value = u.extension;
		$('uf-role').value = u.role;
		$('uf-status').value = '';
		$('uf-password-field').hidden = true;
		$('uf-status-field').hidden = false;
		$('uf-submit').textContent = 'Save changes';
		$('uf-cancel').hidden = false;
		$('user-form-h').textContent = 'Edit ' + u.username;
		$('uf-username').focus();
	}

	resetForm() {
		const $ = this.$;
		$('user-form').reset();
		$('uf-id').value = '';
		$('uf-password-field').hidden = false;
		$('uf-status-field').hidden = true;
		$('uf-submit').textContent = 'Create user';
		$('uf-cancel').hidden = true;
		$('user-form-h').textContent = 'New user';
	}

	async saveUser() {
		const $ = this.$;
		const id = $('uf-id').value;
		const body = {
			username: $('uf-username').value.trim(),
			email: $('uf-email').value.trim(),
			extension: $('uf-extension').value.trim(),
			role: $('uf-role').value,
		};
		if (!body.username || !body.email || !body.extension) {
			this.notice('A user needs a username, an email and ' +
			    'an extension.', 'error');
			return;
		}
		try {
			if (id) {
				if ($('uf-status').value)
					body.status = $('uf-status').value;
				await this.api.put(ADMIN + 'users/' +
				    encodeURIComponent(id), body);
				this.notice('User ' + body.username + ' saved.',
				    'ok');
			} else {
				body.password = $('uf-password').value;
				if (body.password.length < 6) {
					this.notice('A password has at ' +
					    'least 6 characters.', 'error');
					return;
				}
				await this.api.post(ADMIN + 'users', body);
				this.notice('User ' + body.username +
				    ' created.', 'ok');
			}
			this.resetForm();
			this.loadUsers();
		} catch (e) {
			this.notice((id ? 'Saving ' : 'Creating ') +
			    body.username + ' failed: ' + e.message + '.',
			    'error');
		}
	}

	async deleteUser(u) {
		if (!await confirmDialog('Delete ' + u.username + ' (' +
		    u.extension + ') and their call history?'))
			return;
		try {
			await this.api.del(ADMIN + 'users/' +
			    encodeURIComponent(u.id));
			this.notice('User ' + u.username + ' deleted.', 'ok');
			this.loadUsers();
		} catch (e) {
			this.notice('Deleting ' + u.username + ' failed: ' +
			    e.message + '.', 'error');
		}
	}

	/* ---- export ---- */

	async exportLogs() {
		const $ = this.$;
		const format = $('ex-format').value;
		const q = new URLSearchParams({ format });
		const tz = $('ex-tz').value.trim();
		if (tz)
			q.set('tz', tz);
		if ($('ex-from').value)
			q.set('date_from', $('ex-from').value);
		if ($('ex-to').value)
			q.set('date_to', $('ex-to').value);
		this.state('admin-export', 'Preparing the export…');
		try {
			const f = await this.api.file(ADMIN +
			    'export/call-logs?' + q, 'call-logs.' + format);
			saveBlob(f.blob, f.name);
			this.state('admin-export', 'Downloaded ' + f.name +
			    ' (' + bytes(f.blob.size) + ').', 'ok');
		} catch (e) {
			this.state('admin-export', e.unavailable ?
			    absent('Export', e) :
			    'The export failed: ' + e.message + '.',
			    e.unavailable ? 'unavailable' : 'error');
		}
	}

	/* ---- backups ---- */

	async loadBackups() {
		const ul = this.$('backups');
		try {
			const data = await this.api.get(ADMIN + 'backups');
			const list = data.backups || [];
			ul.replaceChildren(...list.map((b) =>
			    this.backupItem(b)));
			this.state('admin-backups', list.length ? '' :
			    'No backup yet.');
			this.$('bk-create').disabled = false;
		} catch (e) {
			ul.replaceChildren();
			this.state('admin-backups', e.unavailable ?
			    absent('Backups', e) :
			    'Backups could not be loaded: ' + e.message + '.',
			    e.unavailable ? 'unavailable' : 'error');
			this.$('bk-create').disabled = e.unavailable;
		}
	}

	backupItem(b) {
		const li = document.createElement('li');
		li.dataset.id = b.id;
		const text = document.createElement('span');
		text.className = 'grow';
		const done = !b.status || b.status === 'completed';
		text.textContent = (b.name || b.id) + ' — ' +
		    when(b.created_at) + (b.size !== undefined ? ', ' +
		    bytes(b.size) : '') + (done ? '' : ', ' + b.status);
		li.append(text);
		for (const [act, label, cls] of [['download', 'Download', ''],
		    ['restore', 'Restore', ''], ['delete', 'Delete', 'bad']]) {
			const btn = document.createElement('button');
			btn.type = 'button';
			btn.className = 'small ' + cls;
			btn.textContent = label;
			btn.dataset.act = act;
			btn.setAttribute('aria-label', label + ' backup ' +
			    (b.name || b.id));
			li.append(btn);
		}
		return li;
	}

	async createBackup() {
		const name = this.$('bk-name').value.trim();
		const body = { include_database: true, include_config: true,
		    include_call_logs: true };
		if (name)
			body.backup_name = name;
		this.state('admin-backups', 'Creating a backup…');
		try {
			const data = await this.api.post(ADMIN + 'backup',
			    body);
			this.$('bk-name').value = '';
			/* A server that takes the backup within the request
			 * says so in its reply: nothing to poll. */
			if (data.status && data.status.status === 'completed')
				this.notice('The backup is complete.', 'ok');
			else
				await this.follow(data.backup_id, 'The backup');
		} catch (e) {
			this.state('admin-backups', e.unavailable ?
			    absent('Backups', e) :
			    'The backup failed: ' + e.message + '.',
			    e.unavailable ? 'unavailable' : 'error');
		}
		this.loadBackups();
	}

	/* Poll a backup's status until it is done; words for its end. */
	async follow(id, what) {
		for (let i = 0; id && i < 120; i++) {
			const r = await this.api.get(ADMIN +
			    'backup/status/' + encodeURIComponent(id));
			const s = r.status || {};
			if (s.status === 'completed') {
				this.notice(what + ' is complete.', 'ok');
				return;
			}
			if (s.status === 'failed')
				throw new Error(s.error || s.message ||
				    'failed');
			const pct = typeof s.progress === 'number' ?
			    ' (' + s.progress + '%)' : '';
			this.state('admin-backups', what + ': ' +
			    (s.message || s.status || 'working') + pct + '…');
			await new Promise((r) => setTimeout(r, BACKUP_POLL_MS));
		}
	}

	async backupAction(act, id) {
		const path = encodeURIComponent(id);
		try {
			if (act === 'download') {
				/* The SQLite database file itself; the server's
				 * Content-Disposition names it. */
				const f = await this.api.file(ADMIN +
				    'backup/download/' + path, id + '.sqlite3');
				saveBlob(f.blob, f.name);
				this.notice('Downloaded ' + f.name + '.', 'ok');
			} else if (act === 'restore') {
				if (!await confirmDialog('Restore backup ' +
				    id + '? Everything written since it was ' +
				    'taken will be replaced.'))
					return;
				const data = await this.api.post(ADMIN +
				    'backup/restore/' + path);
				this.restored(data);
			} else if (act === 'delete') {
				if (!await confirmDialog('Delete backup ' + id +
				    '?'))
					return;
				await this.api.del(ADMIN + 'backup/' + path);
				this.notice('Backup ' + id + ' deleted.', 'ok');
				this.loadBackups();
			}
		} catch (e) {
			const verb = { download: 'downloaded',
			    restore: 'restored', delete: 'deleted' }[act];
			this.notice('The backup could not be ' + verb + ': ' +
			    e.message + '.', 'error');
		}
	}

	/* The restore's reply: done already (the server restores within the
	 * request and names the copy it kept of what was replaced) or
	 * started. Everything shown may have changed: reload it. */
	restored(data) {
		const s = data.status || {};
		if (s.status === 'completed')
			this.notice((s.message || 'Restore completed') +
			    (s.pre_restore_backup ? '; the data it replaced ' +
			    'is kept as backup ' + s.pre_restore_backup : '') +
			    '.', 'ok');
		else
			this.notice(data.message || 'Restore started.', 'ok');
		this.loadBackups();
		this.loadUsers();
		this.live();
	}

	/* ---- wiring ---- */

	wire() {
		const $ = this.$;
		this.wired = true;
		$('user-form').addEventListener('submit', (ev) => {
			ev.preventDefault();
			this.saveUser();
		});
		$('uf-cancel').addEventListener('click',
		    () => this.resetForm());
		$('users').addEventListener('click', (ev) => {
			const b = ev.target.closest('button[data-act]');
			if (!b)
				return;
			const id = Number(b.closest('tr').dataset.id);
			const u = this.users.find((x) => x.id === id);
			if (!u)
				return;
			if (b.dataset.act === 'edit')
				this.editUser(u);
			else
				this.deleteUser(u);
		});
		$('active').addEventListener('click', (ev) => {
			const b = ev.target.closest('button[data-act]');
			if (b)
				this.terminate(b.closest('li').dataset.id);
		});
		$('export-form').addEventListener('submit', (ev) => {
			ev.preventDefault();
			this.exportLogs();
		});
		$('backup-form').addEventListener('submit', (ev) => {
			ev.preventDefault();
			this.createBackup();
		});
		$('backups').addEventListener('click', (ev) => {
			const b = ev.target.closest('button[data-act]');
			if (b)
				this.backupAction(b.dataset.act,
				    b.closest('li').dataset.id);
		});
		/* Time zones the browser knows, its own first. */
		const here = Intl.DateTimeFormat().resolvedOptions().timeZone ||
		    'UTC';
		$('ex-tz').value = here;
		let zones = [];
		try {
			zones = Intl.supportedValuesOf('timeZone');
		} catch (e) {
			zones = [here, 'UTC'];
		}
		$('ex-zones').replaceChildren(...zones.map((z) => {
			const o = document.createElement('option');
			o.value = z;
			return o;
		}));
	}
}

/* Yes or no in a modal <dialog>: focus stays inside it, Escape says no. */
export function confirmDialog(text) {
	const d = document.getElementById('confirm');
	document.getElementById('confirm-text').textContent = text;
	const back = document.activeElement;
	return new Promise((resolve) => {
		d.addEventListener('close', () => {
			if (back && back.isConnected)
				back.focus();
			resolve(d.returnValue === 'yes');
		}, { once: true });
		d.returnValue = '';
		d.showModal();
	});
}
