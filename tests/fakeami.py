"""A scriptable fake Asterisk Manager Interface server (stdlib only).

It speaks what a real Asterisk 22 sent in the captured transcript
(tests/fixtures/ami-transcript.raw), byte for byte where the transcript
has the bytes: the banner, Login success and failure, Ping, Events,
Logoff, unknown actions, actions before Login, Originate (Async) with the
transcript's event sequences for each outcome, Hangup of a live call,
CoreShowChannels (idle and live), QueueStatus (idle). Call events are the
transcript's, with the channel, the extensions, the unique ids and the
ActionID rewritten for the call at hand.

Outcomes of an Originate, chosen per extension (the device's in Channel
first, then Exten) with `outcomes`, else `default_outcome`:
    answered    both legs answer, the call ends by itself (Hangup, Cdr)
    up          the call is answered and stays up until a Hangup action
    ring        the device's dialplan Dials the target, which rings until a
                Redirect of the dialing channel; then the rest of the
                transcript's Dial section (answer, bridge, hang up)
    busy, no-answer, congestion, failed (no such extension),
    badtech     (an unknown channel technology: only OriginateResponse)

Faults on demand: drop() every connection, stall (read and record, answer
nothing), never / twice (sets of action names answered never / twice),
flood(rate, seconds), send_raw(bytes) (garbage), login_delay_s,
accept_logins=False (every Login fails), stop() and start() again on the
same port (Asterisk down and back).

channelvars (a set of names, as manager.conf's channelvars) adds
"ChanVariable: NAME=value" to the originated channel's events for each
such variable its Originate set.

Every action received is recorded (self.actions) so a test can assert
what was sent; Secret values are kept out of repr and logs.

In-process:   ami = FakeAMI(username="sb", secret="s3"); ami.start()
              ... ami.port ... ami.stop()
As a script:  python3 tests/fakeami.py --port 5038 --username sb
              (the secret from the FAKEAMI_SECRET environment variable,
              never from the command line)
"""
import argparse
import os
import re
import socket
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import amitranscript  # noqa: E402

CRLF = b"\r\n"
BANNER = b"Asterisk Call Manager/11.0.0\r\n"

# Transcript sections by the start of their title.
SECTION = {
    "login_fail": "1.",
    "login_ok": "2.",
    "csc_idle": "9.",
    "queuestatus": "10.",
    "answered": "12.",
    "up": "15.",
    "ring": "14.",
    "csc_live": "16.",
    "hangup": "19.",
    "failed": "22.",
    "no-answer": "22b.",
    "busy": "22c.",
    "congestion": "22d.",
    "badtech": "22e.",
}
OUTCOMES = ("answered", "up", "ring", "busy", "no-answer", "congestion",
            "failed", "badtech")
EXTEN_HEADERS = {"Exten", "Extension", "Destination", "LocalOneExten",
                 "LocalTwoExten"}
UNIQUEID = re.compile(r"\b\d{10}\.\d+\b")


def msg(*headers):
    """Header pairs to wire bytes, ending with the empty line."""
    return b"".join(f"{k}: {v}".encode() + CRLF for k, v in headers) + CRLF


def parse(raw):
    """Wire bytes of one message (without its empty line) to pairs."""
    out = []
    for line in raw.split(b"\n"):
        line = line.rstrip(b"\r").decode("utf-8", "replace")
        if not line:
            continue
        k, _, v = line.partition(":")
        out.append((k, v.lstrip(" ")))
    return out


def split_messages(data):
    """Wire bytes to [pairs], one per message (the banner left out)."""
    out = []
    for part in data.replace(BANNER, b"").split(b"\r\n\r\n"):
        if part.strip():
            out.append(parse(part))
    return out


class Template:
    """One transcript section: its action's headers and the messages
    Asterisk answered with."""

    def __init__(self, sent, recv):
        acts = split_messages(sent)
        self.action = dict(acts[0]) if acts else {}
        self.messages = split_messages(recv)


def load_templates(path=amitranscript.FIXTURE):
    secs = amitranscript.sections(path)
    out = {}
    for key, prefix in SECTION.items():
        for title, (sent, recv) in secs.items():
            if title.startswith(prefix + " "):
                out[key] = Template(sent, recv)
                break
        else:
            raise KeyError(f"transcript has no section {prefix}")
    return out


class Rewrite:
    """The substitutions that make a template's call this call."""

    def __init__(self, fake, tpl, channel, exten, variables):
        a = tpl.action
        self.tpl_channel = a.get("Channel", "")
        self.channel = channel or self.tpl_channel
        seq = fake.next_seq()
        self.seq_old = None
        self.seq_new = f"-{seq:08x}"
        self.uid = {}
        self.fake = fake
        self.nums = {}
        m = re.match(r"[^/]+/(\d+)@", self.tpl_channel)
        n = re.match(r"[^/]+/([^@;-]+)", self.channel)
        if m and n:
            self.nums[m.group(1)] = n.group(1)
        if a.get("Exten") and exten:
            self.nums.setdefault(a["Exten"], exten)
        self.vars = {}
        if variables:
            k, _, v = variables[0].partition("=")
            self.vars = {"LABVAR": k, "hello": v}
        # manager.conf's channelvars: the originated channel's events
        # carry "ChanVariable: NAME=value" for each of these it has.
        given = dict(x.partition("=")[::2] for x in variables or [])
        self.chanvars = [f"{k}={given[k]}" for k in sorted(fake.channelvars)
                         if k in given]
        # The template's channel suffix: Local/1000@default-0000000b;1
        for m_ in tpl.messages:
            for k, v in m_:
                s = re.search(re.escape(self.tpl_channel) + r"(-[0-9a-f]{8})",
                    v)
                if s:
                    self.seq_old = s.group(1)
                    break
            if self.seq_old:
                break

    def value(self, name, v, action_ids):
        if name == "ActionID":
            return action_ids.get(v, v)
        if name in EXTEN_HEADERS and v in self.nums:
            return self.nums[v]
        if name in ("Variable", "Value") and v in self.vars:
            return self.vars[v]
        if self.tpl_channel and self.tpl_channel in v:
            v = v.replace(self.tpl_channel, self.channel)
            if self.seq_old:
                v = v.replace(self.seq_old, self.seq_new)
        return UNIQUEID.sub(lambda m: self.unique(m.group(0)), v)

    def unique(self, old):
        if old not in self.uid:
            self.uid[old] = self.fake.next_uniqueid()
        return self.uid[old]

    def apply(self, messages, action_ids):
        out = [[(k, self.value(k, v, action_ids)) for k, v in m]
               for m in messages]
        if self.chanvars:
            out = [m + [("ChanVariable", cv) for cv in self.chanvars]
                   if self.originated(m) else m for m in out]
        return out

    def originated(self, m):
        """Whether m is an event of the originated channel (Local's ;1)."""
        d = dict(m)
        ch = d.get("Channel", "")
        return ("Event" in d and ch.startswith(self.channel + "-")
                and not ch.endswith(";2"))


class Call:
    def __init__(self, rewrite, exten, channels, rest=None):
        self.rewrite = rewrite
        self.exten = exten
        self.channels = channels  # live channel names
        self.rest = rest  # ring: the messages a Redirect releases


class Action:
    """One action as received: its headers in order and its bytes."""

    def __init__(self, conn, headers, raw):
        self.conn = conn
        self.headers = headers
        self.raw = raw
        self.at = time.monotonic()
        self.name = self.get("Action", "")

    def get(self, name, default=None):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return default

    def __repr__(self):
        shown = [(k, "***" if k.lower() == "secret" else v)
                 for k, v in self.headers]
        return f"Action(conn={self.conn}, {shown})"


class Conn:
    def __init__(self, fake, sock, cid):
        self.fake = fake
        self.sock = sock
        self.id = cid
        self.lock = threading.Lock()
        self.logged_in = False
        self.events = None  # None: all classes; set(): none
        self.closed = False

    def send(self, data):
        with self.lock:
            if self.closed:
                return False
            try:
                self.sock.sendall(data)
                return True
            except OSError:
                self.closed = True
                return False

    def wants(self, pairs):
        """Whether this connection receives this event (its Events:)."""
        if not self.logged_in:
            return False
        if self.events is None:
            return True
        priv = dict(pairs).get("Privilege", "")
        return priv.split(",")[0] in self.events

    def close(self):
        with self.lock:
            self.closed = True
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()


def events_setting(v):
    v = (v or "").strip().lower()
    if v in ("", "on", "yes", "true"):
        return None
    if v in ("off", "no", "false"):
        return set()
    return {c.strip() for c in v.split(",") if c.strip()}


class FakeAMI:
    def __init__(self, username="switchboard", secret="secret",
                 host="127.0.0.1", port=0, templates=None):
        self.username = username
        self.secret = secret
        self.host = host
        self.port = port
        self.tpl = templates or load_templates()
        self.outcomes = {}
        self.default_outcome = "answered"
        self.channelvars = set()
        self.originate_delay_s = 0.0  # before an Originate's events
        self.accept_logins = True
        self.login_delay_s = 0.0
        self.event_gap_s = 0.0
        self.stall = False
        self.never = set()
        self.twice = set()
        self.actions = []
        self.logins = 0
        self.login_failures = 0
        self.connections = 0
        self.flooded = 0
        self.calls = []
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._conns = []
        self._lsock = None
        self._seq = 0x20
        self._uid = 0
        self._uid_base = int(time.time())
        self._stopping = False

    # -- lifecycle -------------------------------------------------------

    def start(self):
        """Listen (on self.port, or a free port the first time)."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.port))
        s.listen(16)
        self.port = s.getsockname()[1]
        self._lsock = s
        self._stopping = False
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()
        return self

    def stop(self):
        """Stop listening and drop every connection (Asterisk down)."""
        self._stopping = True
        if self._lsock is not None:
            try:
                self._lsock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._lsock.close()
            self._lsock = None
        self.drop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        self.stop()

    # -- faults ----------------------------------------------------------

    def drop(self):
        """Close every connection now, mid-message if need be."""
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            c.close()

    def send_raw(self, data):
        """Bytes as they are to every connection (garbage, half messages)."""
        for c in self._live():
            c.send(data)

    def flood(self, rate, seconds, wait=False):
        """Send the transcript's Newexten event at rate per second for
        seconds to every logged-in connection, in a thread."""
        ev = next(m for m in self.tpl["answered"].messages
                  if dict(m).get("Event") == "Newexten")
        data = msg(*ev)

        def run():
            t0 = time.monotonic()
            n = 0
            while time.monotonic() - t0 < seconds and not self._stopping:
                due = int((time.monotonic() - t0) * rate) + 1
                while n < due:
                    for c in self._live():
                        if c.wants(ev) and c.send(data):
                            with self._lock:
                                self.flooded += 1
                    n += 1
                time.sleep(0.001)
        t = threading.Thread(target=run, daemon=True)
        t.start()
        if wait:
            t.join()
        return t

    def hangup_all(self):
        """Every live call ends as if hung up in Asterisk (no action)."""
        with self._lock:
            calls, self.calls = self.calls, []
        for call in calls:
            # The events only: nobody asked, so there is no Response.
            self._emit_all(self._hangup_events(call, None)[1:])

    # -- observation -----------------------------------------------------

    def actions_named(self, name):
        with self._lock:
            return [a for a in self.actions if a.name.lower() == name.lower()]

    def wait_for(self, pred, timeout=10.0, what="condition"):
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                v = pred()
                if v:
                    return v
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"fakeami: timed out waiting for "
                                         f"{what}")
                self._cond.wait(min(left, 0.05))

    def live_connections(self):
        return len(self._live())

    # -- internals -------------------------------------------------------

    def next_seq(self):
        with self._lock:
            self._seq += 1
            return self._seq

    def next_uniqueid(self):
        with self._lock:
            self._uid += 1
            return f"{self._uid_base}.{self._uid}"

    def _live(self):
        with self._lock:
            return [c for c in self._conns if not c.closed]

    def _accept(self, lsock):
        cid = 0
        while True:
            try:
                s, _ = lsock.accept()
            except OSError:
                return
            cid += 1
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c = Conn(self, s, cid)
            with self._cond:
                self._conns.append(c)
                self.connections += 1
                self._cond.notify_all()
            threading.Thread(target=self._serve, args=(c,),
                             daemon=True).start()

    def _serve(self, c):
        c.send(BANNER)
        buf = b""
        while not c.closed:
            try:
                data = c.sock.recv(65536)
            except OSError:
                break
            if not data:
                break
            buf += data
            while True:
                m = re.search(rb"\r?\n\r?\n", buf)
                if m is None:
                    break
                raw, buf = buf[:m.end()], buf[m.end():]
                headers = parse(raw)
                if not headers:
                    continue
                a = Action(c.id, headers, raw)
                with self._cond:
                    self.actions.append(a)
                    self._cond.notify_all()
                if self.stall or a.name in self.never:
                    continue
                self._handle(c, a)
                if a.name in self.twice:
                    self._handle(c, a)
        c.closed = True
        with self._cond:
            self._cond.notify_all()

    def _reply(self, c, *headers):
        c.send(msg(*headers))

    def _handle(self, c, a):
        aid = a.get("ActionID")
        idh = [("ActionID", aid)] if aid is not None else []
        name = a.name.lower()
        if name == "login":
            return self._login(c, a, idh)
        if not c.logged_in:
            return self._reply(c, ("Response", "Error"), *idh,
                               ("Message", "Permission denied"))
        if name == "ping":
            return self._reply(c, ("Response", "Success"), *idh,
                               ("Ping", "Pong"),
                               ("Timestamp", f"{time.time():.6f}"))
        if name == "events":
            c.events = events_setting(a.get("EventMask"))
            return self._reply(c, ("Response", "Success"), *idh,
                               ("Events", "Off" if c.events == set()
                                else "On"))
        if name == "logoff":
            self._reply(c, ("Response", "Goodbye"), *idh,
                        ("Message", "Thanks for all the fish."))
            return c.close()
        if name == "originate":
            return self._originate(c, a, aid)
        if name == "hangup":
            return self._hangup(c, a, aid, idh)
        if name == "redirect":
            return self._redirect(c, a, idh)
        if name == "coreshowchannels":
            return self._coreshowchannels(c, aid)
        if name == "queuestatus":
            t = self.tpl["queuestatus"]
            ids = {t.action.get("ActionID"): aid}
            for m in t.messages:
                c.send(msg(*[(k, ids.get(v, v) if k == "ActionID" else v)
                             for k, v in m]))
            return None
        return self._reply(c, ("Response", "Error"), *idh,
                           ("Message", f"Invalid/unknown command: {a.name}. "
                            "Use Action: ListCommands to show available "
                            "commands."))

    def _login(self, c, a, idh):
        if self.login_delay_s:
            time.sleep(self.login_delay_s)
        ok = (self.accept_logins and a.get("Username") == self.username
              and a.get("Secret") == self.secret)
        if not ok:
            with self._cond:
                self.login_failures += 1
                self._cond.notify_all()
            self._reply(c, ("Response", "Error"), *idh,
                        ("Message", "Authentication failed"))
            return c.close()
        c.events = events_setting(a.get("Events"))
        c.logged_in = True
        with self._cond:
            self.logins += 1
            self._cond.notify_all()
        self._reply(c, ("Response", "Success"), *idh,
                    ("Message", "Authentication accepted"))
        # FullyBooted and SuccessfulAuth, as the transcript has them (the
        # account being the one that logged in).
        for m in self.tpl["login_ok"].messages:
            if "Event" in dict(m) and c.wants(m):
                c.send(msg(*[(k, self.username if k == "AccountID" else v)
                             for k, v in m]))
        return None

    def _outcome(self, channel, exten):
        n = re.match(r"[^/]+/([^@;-]+)", channel or "")
        for key in ((n.group(1) if n else None), exten):
            if key is not None and key in self.outcomes:
                return self.outcomes[key]
        return self.default_outcome

    def _originate(self, c, a, aid):
        channel = a.get("Channel")
        exten = a.get("Exten")
        outcome = self._outcome(channel, exten)
        if outcome not in OUTCOMES:
            raise ValueError(f"fakeami: unknown outcome {outcome!r}")
        tpl = self.tpl[outcome]
        variables = [v for k, v in a.headers if k.lower() == "variable"]
        rw = Rewrite(self, tpl, channel, exten, variables)
        out = rw.apply(tpl.messages, {tpl.action.get("ActionID"): aid})
        # The Response goes to the caller; the events to every connection
        # that wants them, as Asterisk does.
        c.send(msg(*out[0]))
        if outcome == "up":
            chans = sorted({v for m in out for k, v in m if k == "Channel"
                            and v.startswith(rw.channel + "-")})
            with self._lock:
                self.calls.append(Call(rw, exten, chans))
        events = out[1:]
        if outcome == "ring":
            # Up to the Dial that rings the target (it has a source).
            i = next(i for i, m in enumerate(events)
                     if dict(m).get("Event") == "DialBegin"
                     and dict(m).get("Channel"))
            events, rest = events[:i + 1], events[i + 1:]
            chans = sorted({v for m in events for k, v in m
                            if k in ("Channel", "DestChannel") and v})
            with self._lock:
                self.calls.append(Call(rw, exten, chans, rest))
        threading.Thread(target=self._emit_later, args=(events,),
                         daemon=True).start()

    def _emit_later(self, messages):
        if self.originate_delay_s:
            time.sleep(self.originate_delay_s)
        self._emit_all(messages)

    def _redirect(self, c, a, idh):
        chan = a.get("Channel", "")
        with self._lock:
            call = next((x for x in self.calls if x.rest is not None
                         and chan in x.channels), None)
            if call is not None:
                self.calls.remove(call)
        if call is None:
            return self._reply(c, ("Response", "Error"), *idh,
                               ("Message", "Channel specified does not "
                                "exist"))
        self._reply(c, ("Response", "Success"), *idh,
                    ("Message", "Redirect successful"))
        self._emit_all(call.rest)
        return None

    def _emit_all(self, messages):
        for m in messages:
            data = msg(*m)
            for c in self._live():
                if c.wants(m):
                    c.send(data)
            if self.event_gap_s:
                time.sleep(self.event_gap_s)

    def _hangup_events(self, call, aid):
        t = self.tpl["hangup"]
        out = call.rewrite.apply(t.messages,
                                 {t.action.get("ActionID"): aid})
        return out

    def _hangup(self, c, a, aid, idh):
        chan = a.get("Channel", "")
        with self._lock:
            call = next((x for x in self.calls if chan in x.channels), None)
            if call is not None:
                self.calls.remove(call)
        if call is None:
            return self._reply(c, ("Response", "Error"), *idh,
                               ("Message", "No such channel"))
        out = self._hangup_events(call, aid)
        c.send(msg(*out[0]))
        self._emit_all(out[1:])
        return None

    def _coreshowchannels(self, c, aid):
        with self._lock:
            calls = list(self.calls)
        if not calls:
            t = self.tpl["csc_idle"]
            ids = {t.action.get("ActionID"): aid}
            for m in t.messages:
                c.send(msg(*[(k, ids.get(v, v) if k == "ActionID" else v)
                             for k, v in m]))
            return
        t = self.tpl["csc_live"]
        ids = {t.action.get("ActionID"): aid}
        first, items, last = t.messages[0], t.messages[1:-1], t.messages[-1]
        c.send(msg(*[(k, ids.get(v, v) if k == "ActionID" else v)
                     for k, v in first]))
        n = 0
        for call in calls:
            for m in call.rewrite.apply(items, ids):
                c.send(msg(*m))
                n += 1
        c.send(msg(*[(k, ids.get(v, v) if k == "ActionID" else
                      str(n) if k == "ListItems" else v) for k, v in last]))


def main():
    ap = argparse.ArgumentParser(description="fake Asterisk AMI server")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=5038)
    ap.add_argument("--username", default="switchboard")
    ap.add_argument("--outcome", action="append", default=[],
                    metavar="EXT=OUTCOME",
                    help=f"outcome of an Originate to EXT: {OUTCOMES}")
    ap.add_argument("--default-outcome", default="answered")
    ap.add_argument("--log-actions", action="store_true",
                    help="print each action received (secrets masked)")
    args = ap.parse_args()
    fake = FakeAMI(username=args.username,
                   secret=os.environ.get("FAKEAMI_SECRET", "secret"),
                   host=args.host, port=args.port)
    for o in args.outcome:
        k, _, v = o.partition("=")
        fake.outcomes[k] = v
    fake.default_outcome = args.default_outcome
    fake.start()
    print(f"fakeami: listening on {args.host}:{fake.port}", flush=True)
    seen = 0
    try:
        while True:
            time.sleep(0.2)
            if args.log_actions:
                with fake._lock:
                    new = fake.actions[seen:]
                    seen = len(fake.actions)
                for a in new:
                    print(repr(a), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
