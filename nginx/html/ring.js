/*
 * Tones made with WebAudio, so there is no sound file to serve: the
 * ringtone of an incoming call (440 + 480 Hz, two seconds on, four off,
 * as North American phones ring) and the ringback a caller hears.
 *
 * Browsers only let a page start audio after a user gesture: unlock() is
 * called from the login click, so the context exists and runs before a
 * call can come in.
 */

let ctx = null;

export function unlock() {
	const AC = window.AudioContext || window.webkitAudioContext;
	if (!AC)
		return;
	if (!ctx) {
		try {
			ctx = new AC();
		} catch (e) {
			ctx = null;
			return;
		}
	}
	if (ctx.state === 'suspended')
		ctx.resume().catch(() => {});
}

/* 'running' once a tone can be heard; 'suspended' before a gesture. */
export function audioState() {
	return ctx ? ctx.state : 'none';
}

export class Tone {
	/* freqs: Hz; on/off: the cadence in seconds. */
	constructor(freqs, on, off, gain) {
		this.freqs = freqs;
		this.on = on;
		this.off = off;
		this.gain = gain;
		this.g = null;
		this.timer = null;
	}

	get playing() {
		return this.timer !== null;
	}

	start() {
		if (this.timer !== null)
			return;
		unlock();
		const burst = () => this.burst();
		burst();
		this.timer = setInterval(burst, (this.on + this.off) * 1000);
	}

	burst() {
		if (!ctx || ctx.state !== 'running')
			return;
		const t = ctx.currentTime;
		const g = ctx.createGain();
		g.gain.setValueAtTime(0, t);
		g.gain.linearRampToValueAtTime(this.gain, t + 0.02);
		g.gain.setValueAtTime(this.gain, t + this.on - 0.02);
		g.gain.linearRampToValueAtTime(0, t + this.on);
		g.connect(ctx.destination);
		this.g = g;
		for (const f of this.freqs) {
			const o = ctx.createOscillator();
			o.frequency.value = f;
			o.connect(g);
			o.start(t);
			o.stop(t + this.on);
		}
	}

	stop() {
		clearInterval(this.timer);
		this.timer = null;
		/* Silent at once, not at the end of the burst. */
		if (this.g)
			this.g.disconnect();
		this.g = null;
	}
}

export const ringtone = new Tone([440, 480], 2, 4, 0.15);
export const ringback = new Tone([440, 480], 1, 3, 0.05);
