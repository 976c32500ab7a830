/*
 * The REST side: one fetch wrapper that turns every failure into an
 * ApiError whose message is words a person can read, never a bare status.
 */

/* Statuses meaning "this server has no such feature (yet)": the route is
 * missing (404), not implemented (501) or its backend is not there (503,
 * and 502 from nginx when a program is down). */
const ABSENT = new Set([404, 501, 502, 503]);

export class ApiError extends Error {
	constructor(message, status, field, path) {
		super(message);
		this.status = status;
		this.field = field || null;
		this.path = path;
	}

	/* The route or the service behind it is not available here. */
	get unavailable() {
		return this.status === 0 || ABSENT.has(this.status);
	}
}

/* What a status means when the body says nothing. */
const STATUS_WORDS = {
	400: 'The request was refused as invalid',
	401: 'You are not logged in, or your session has ended',
	403: 'You are not allowed to do that',
	404: 'Not found',
	409: 'That conflicts with something that already exists',
	413: 'What was sent is too large',
	429: 'Too many attempts; wait a moment and try again',
	500: 'The server failed',
	501: 'Not implemented on this server',
	502: 'The service is not running',
	503: 'The service is busy or not available',
	504: 'The server took too long to answer',
};

/* Field names as a form labels them. */
const FIELD_WORDS = {
	username: 'username',
	password: 'password',
	email: 'email',
	extension: 'extension',
	target_extension: 'extension',
	role: 'role',
	status: 'status',
	limit: 'page size',
	id: 'id',
};

function words(status, data) {
	let text = data && (data.error || data.message);
	if (typeof text !== 'string' || text === '')
		text = STATUS_WORDS[status] || 'The server answered ' + status;
	if (data && data.field && FIELD_WORDS[data.field] !== undefined &&
	    !text.toLowerCase().includes(FIELD_WORDS[data.field]))
		text += ' (' + FIELD_WORDS[data.field] + ')';
	return text;
}

export class Api {
	constructor() {
		this.token = null;
		/* Called when a protected route says 401. */
		this.onExpired = null;
	}

	headers(body, extra) {
		const h = Object.assign({}, extra || {});
		if (body !== undefined)
			h['Content-Type'] = 'application/json';
		if (this.token)
			h.Authorization = 'Bearer ' + this.token;
		return h;
	}

	async send(method, path, body, extra) {
		let r;
		try {
			r = await fetch(path, {
				method,
				headers: this.headers(body, extra),
				body: body === undefined ? undefined :
				    JSON.stringify(body),
				cache: 'no-store',
			});
		} catch (e) {
			throw new ApiError('The server could not be reached; ' +
			    'check the network connection', 0, null, path);
		}
		if (r.status === 401 && this.token &&
		    path.startsWith('/protected/') && this.onExpired)
			this.onExpired();
		return r;
	}

	/* JSON in, JSON out; ApiError on any status outside 2xx. */
	async json(method, path, body) {
		const r = await this.send(method, path, body);
		let data = null;
		try {
			data = await r.json();
		} catch (e) {
			data = null;
		}
		if (!r.ok)
			throw new ApiError(words(r.status, data), r.status,
			    data && data.field, path);
		if (data === null)
			throw new ApiError('The server sent an answer that ' +
			    'is not JSON', r.status, null, path);
		return data;
	}

	get(path) {
		return this.json('GET', path);
	}

	post(path, body) {
		return this.json('POST', path, body === undefined ? {} : body);
	}

	put(path, body) {
		return this.json('PUT', path, body);
	}

	del(path) {
		return this.json('DELETE', path);
	}

	/* A file download with the token (a plain link cannot carry it):
	 * {blob, name}. */
	async file(path, fallbackName) {
		const r = await this.send('GET', path);
		if (!r.ok) {
			let data = null;
			try {
				data = await r.json();
			} catch (e) {
				data = null;
			}
			throw new ApiError(words(r.status, data), r.status,
			    data && data.field, path);
		}
		const cd = r.headers.get('Content-Disposition') || '';
		const m = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(cd);
		let name = m ? decodeURIComponent(m[1]) : fallbackName;
		name = name.replace(/[/\\]/g, '_');
		return { blob: await r.blob(), name };
	}
}

/* Hand a blob to the browser as a download. */
export function saveBlob(blob, name) {
	const url = URL.createObjectURL(blob);
	const a = document.createElement('a');
	a.href = url;
	a.download = name;
	a.hidden = true;
	document.body.append(a);
	a.click();
	a.remove();
	setTimeout(() => URL.revokeObjectURL(url), 10000);
}
