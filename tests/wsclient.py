"""A small WebSocket client for the relay's end-to-end tests.

It reads frame by frame (websocket-client's recv_frame) so a test can tell
how many frames carried a message, keeps messages a test did not ask for yet
in an inbox, and answers pings itself.
"""

import base64
import json
import os
import socket
import struct
import time
import urllib.parse

import websocket

DEFAULT_TIMEOUT = 10.0


class Closed(Exception):
    """The relay closed the socket; code is the close code (None: no frame)."""

    def __init__(self, code, reason=b""):
        super().__init__("closed with %r %r" % (code, reason))
        self.code = code
        self.reason = reason


class Timeout(AssertionError):
    pass


def ws_url(system, token=None, extension=None, since=None, epoch=None):
    q = []
    if token is not None:
        q.append(("token", token))
    if extension is not None:
        q.append(("extension", extension))
    if since is not None:
        q.append(("since", str(since)))
    if epoch is not None:
        q.append(("epoch", epoch))
    url = system.ws_url
    if q:
        url += "?" + urllib.parse.urlencode(q)
    return url


class Client:
    """One WebSocket connection; messages are dicts (one JSON object each)."""

    def __init__(self, url, timeout=DEFAULT_TIMEOUT, name=""):
        self.name = name
        self.ws = websocket.create_connection(url, timeout=timeout,
            skip_utf8_validation=False)
        self.inbox = []   # received, not yet taken by a wait
        self.log = []     # every message, in arrival order
        self.frames = []  # number of frames of each message in log
        self.closed = None
        self.epoch = None
        self.welcome_seq = None

    # -- reading -------------------------------------------------------

    def _read_one(self, deadline):
        """Read frames until one whole message; None on timeout."""
        nframes = 0
        parts = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.ws.settimeout(left)
            try:
                fr = self.ws.recv_frame()
            except (socket.timeout, websocket.WebSocketTimeoutException):
                return None
            except (websocket.WebSocketConnectionClosedException,
                ConnectionError, OSError) as ex:
                self.closed = (None, str(ex).encode())
                raise Closed(None, str(ex).encode())
            op = fr.opcode
            if op == websocket.ABNF.OPCODE_PING:
                self.ws.pong(fr.data)
                continue
            if op == websocket.ABNF.OPCODE_PONG:
                continue
            if op == websocket.ABNF.OPCODE_CLOSE:
                code = None
                if len(fr.data) >= 2:
                    code = struct.unpack("!H", fr.data[:2])[0]
                self.closed = (code, fr.data[2:])
                # No close frame back: the relay closes its side right
                # after its own close frame, and one arriving after that
                # is answered with a reset the proxy logs.
                raise Closed(code, fr.data[2:])
            nframes += 1
            parts.append(fr.data)
            if fr.fin:
                break
        raw = b"".join(parts)
        if isinstance(raw, str):
            raw = raw.encode()
        try:
            msg = json.loads(raw)
        except ValueError as ex:
            raise AssertionError("%s: frame is not one JSON object: "
                "%r (%s)" % (self.name, raw[:300], ex))
        if not isinstance(msg, dict):
            raise AssertionError("%s: message is not a JSON object: %r"
                % (self.name, raw[:300]))
        self.log.append(msg)
        self.frames.append(nframes)
        return msg, nframes

    def recv(self, timeout=DEFAULT_TIMEOUT):
        """The next message (inbox first)."""
        if self.inbox:
            return self.inbox.pop(0)
        got = self._read_one(time.monotonic() + timeout)
        if got is None:
            raise Timeout("%s: no message within %.1f s" % (self.name,
                timeout))
        return got[0]

    def wait_for(self, pred, timeout=DEFAULT_TIMEOUT, what="message"):
        """The first message matching pred; others stay in the inbox."""
        for i, m in enumerate(self.inbox):
            if pred(m):
                return self.inbox.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            got = self._read_one(deadline)
            if got is None:
                raise Timeout("%s: no %s within %.1f s; inbox: %s" % (
                    self.name, what, timeout,
                    _short(self.inbox)))
            if pred(got[0]):
                return got[0]
            self.inbox.append(got[0])

    def wait_type(self, mtype, timeout=DEFAULT_TIMEOUT, **fields):
        def pred(m):
            if m.get("type") != mtype:
                return False
            return all(m.get(k) == v for k, v in fields.items())
        return self.wait_for(pred, timeout,
            what="%s %r" % (mtype, fields or ""))

    def drain(self, duration):
        """Everything that arrives within duration seconds (plus inbox)."""
        out = self.inbox
        self.inbox = []
        deadline = time.monotonic() + duration
        while True:
            got = self._read_one(deadline)
            if got is None:
                return out
            out.append(got[0])

    def take_all(self, pred):
        """Remove and return inbox messages matching pred."""
        keep, out = [], []
        for m in self.inbox:
            (out if pred(m) else keep).append(m)
        self.inbox = keep
        return out

    def wait_closed(self, timeout=DEFAULT_TIMEOUT):
        """Read until the relay closes; returns the close code."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                got = self._read_one(deadline)
                if got is None:
                    raise Timeout("%s: not closed within %.1f s"
                        % (self.name, timeout))
                self.inbox.append(got[0])
        except Closed as c:
            return c.code

    # -- writing -------------------------------------------------------

    def send(self, obj):
        self.ws.send(json.dumps(obj) if not isinstance(obj, str) else obj)

    def ping(self, timeout=DEFAULT_TIMEOUT):
        """Send ping, wait for the pong; other messages stay queued."""
        self.send({"type": "ping"})
        return self.wait_type("pong", timeout)

    def close(self):
        try:
            if self.closed is not None:
                # The close handshake is done (_read_one answered it): a
                # second close frame would reach a relay that has gone,
                # and the proxy would log the failed send.
                self.ws.shutdown()
            else:
                self.ws.close(timeout=1)
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def _short(msgs, n=8):
    s = [json.dumps(m)[:160] for m in msgs[-n:]]
    return "[%d] %s" % (len(msgs), " | ".join(s))


def connect(system, token=None, extension=None, since=None,
    timeout=DEFAULT_TIMEOUT, name="", welcome=True, epoch=None):
    """Open a socket; with welcome, read and check the welcome first (its
    epoch and last_seq are kept as c.epoch and c.welcome_seq)."""
    c = Client(ws_url(system, token, extension, since, epoch), timeout,
        name=name or (extension or "client"))
    if welcome:
        m = c.recv(timeout)
        assert list(m) == ["type", "status", "timestamp", "epoch",
            "last_seq"], m
        assert m["type"] == "welcome" and m["status"] == "connected", m
        assert m["timestamp"] == 0, m
        assert isinstance(m["epoch"], str) and m["epoch"], m
        assert isinstance(m["last_seq"], int) and m["last_seq"] >= 0, m
        c.epoch = m["epoch"]
        c.welcome_seq = m["last_seq"]
    return c


def connect_user(system, user, since=None, name=None, welcome=True,
    timeout=DEFAULT_TIMEOUT, epoch=None):
    return connect(system, token=user["token"], since=since,
        name=name or user["extension"], welcome=welcome, timeout=timeout,
        epoch=epoch)


def refused(url, timeout=DEFAULT_TIMEOUT):
    """
    Try to open url; return the HTTP status when the upgrade was refused
    (0 when it failed without a status). AssertionError when it succeeded
    and the socket stays usable (an answered ping).
    """
    try:
        ws = websocket.create_connection(url, timeout=timeout)
    except websocket.WebSocketBadStatusException as ex:
        return ex.status_code
    except (websocket.WebSocketException, ConnectionError, OSError):
        return 0
    # Upgraded: refused only if the relay closes it at once.
    try:
        ws.send(json.dumps({"type": "ping"}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ws.settimeout(max(0.1, deadline - time.monotonic()))
            fr = ws.recv_frame()
            if fr.opcode == websocket.ABNF.OPCODE_CLOSE:
                return 0
            if fr.opcode == websocket.ABNF.OPCODE_TEXT:
                m = json.loads(fr.data)
                if m.get("type") == "pong":
                    break
    except (websocket.WebSocketException, ConnectionError, OSError):
        return 0
    finally:
        try:
            ws.close(timeout=0.5)
        except Exception:
            pass
    raise AssertionError("upgrade accepted and socket usable: %s" %
        _redact(url))


def _redact(url):
    return url.split("?")[0] + "?..."


# -- the control socket ------------------------------------------------------

def ctl(system, request, timeout=DEFAULT_TIMEOUT):
    """One request (dict, or raw bytes sent as they are); the reply dict."""
    path = os.path.join(system.run_dir, "ctl.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        if isinstance(request, (bytes, bytearray)):
            data = bytes(request)
        else:
            data = json.dumps(request).encode() + b"\n"
        s.sendall(data)
        buf = b""
        while b"\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    finally:
        s.close()
    line = buf.split(b"\n", 1)[0]
    if not line:
        return None
    return json.loads(line)


# -- a raw client that can stop reading --------------------------------------

def _upgrade(s, host, port, path):
    """Send an upgrade request for path on s; (reply head, bytes after it)."""
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n" % (path, host, port,
        key)).encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise AssertionError("upgrade: closed without a reply")
        buf += chunk
    return buf.split(b"\r\n\r\n", 1)


def raw_connect(system, token, rcvbuf=4096, timeout=DEFAULT_TIMEOUT,
    **query):
    """
    A plain TCP socket upgraded to WebSocket by hand, with a small
    receive buffer and any further query (since, epoch); returns (sock,
    leftover bytes after the 101 headers).
    """
    u = urllib.parse.urlsplit(system.ws_url)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect((u.hostname, u.port))
    head, rest = _upgrade(s, u.hostname, u.port,
        u.path + "?" + urllib.parse.urlencode(dict(query, token=token)))
    status = head.split(b"\r\n", 1)[0]
    assert b" 101 " in status + b" ", status
    return s, rest


def raw_frames(sock, buf, timeout):
    """
    Read frames from a raw socket until a close frame or EOF; returns
    (list of (opcode, payload)), close code or None).
    """
    frames = []
    deadline = time.monotonic() + timeout
    while True:
        while True:
            fr = _parse_frame(buf)
            if fr is None:
                break
            (op, payload), buf = fr
            frames.append((op, payload))
            if op == 8:
                code = None
                if len(payload) >= 2:
                    code = struct.unpack("!H", payload[:2])[0]
                return frames, code
        left = deadline - time.monotonic()
        if left <= 0:
            raise Timeout("raw socket: no close within %.1f s (%d "
                "frames)" % (timeout, len(frames)))
        sock.settimeout(left)
        try:
            chunk = sock.recv(1 << 20)
        except socket.timeout:
            continue
        except ConnectionError:
            return frames, None
        if not chunk:
            return frames, None
        buf += chunk


def _parse_frame(buf):
    if len(buf) < 2:
        return None
    b0, b1 = buf[0], buf[1]
    n = b1 & 0x7f
    off = 2
    if n == 126:
        if len(buf) < 4:
            return None
        n = struct.unpack("!H", buf[2:4])[0]
        off = 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n = struct.unpack("!Q", buf[2:10])[0]
        off = 10
    if b1 & 0x80:
        off += 4  # servers do not mask; skip a key anyway
    if len(buf) < off + n:
        return None
    return (b0 & 0x0f, buf[off:off + n]), buf[off + n:]


# -- helpers shared by the tests ----------------------------------------------

def wait_until(fn, timeout=DEFAULT_TIMEOUT, what="condition", step=0.05):
    """Poll fn until it returns a true value; return it."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(step)
    raise Timeout("%s not reached within %.1f s (last: %r)" % (what,
        timeout, last))


def set_status(system, user, status):
    r = system.req("PUT", "/protected/status", token=user["token"],
        json={"status": status})
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()


def barrier(system, marker, status, clients, timeout=DEFAULT_TIMEOUT):
    """
    Make marker (a user that never opens a socket) set status, and wait
    until every client got the resulting user_status_changed. Anything
    the relay queued for these clients before the change arrives first.
    Callers pass a status different from the marker's previous one.
    """
    set_status(system, marker, status)
    for c in clients:
        c.wait_for(lambda m: m.get("type") == "user_status_changed" and
            m.get("user_id") == marker["id"] and
            m.get("status") == status, timeout,
            what="barrier %s" % status)


def events(msgs, mtype, **fields):
    return [m for m in msgs if m.get("type") == mtype and
        all(m.get(k) == v for k, v in fields.items())]


def initiate(system, caller, callee_ext):
    """POST /protected/call/initiate?method=webrtc; the response."""
    return system.req("POST", "/protected/call/initiate?method=webrtc",
        token=caller["token"], json={"target_extension": callee_ext})


def start_call(system, caller, callee, c_caller, c_callee, accept=True):
    """
    A WebRTC call from caller to callee, both connected (c_caller,
    c_callee); with accept the callee accepts it. Returns the call id.
    """
    r = initiate(system, caller, callee["extension"])
    assert r.status_code == 200, (r.status_code, r.text)
    call_id = r.json()["call_id"]
    c_callee.wait_type("webrtc_call_invitation", call_id=call_id)
    c_caller.wait_type("webrtc_call_initiated", call_id=call_id)
    if accept:
        c_callee.send({"type": "webrtc_call_accepted",
            "call_id": call_id, "to": caller["extension"],
            "from": callee["extension"], "channel": call_id})
        c_caller.wait_type("webrtc_call_accepted", channel=call_id)
    return call_id


def call_row(system, call_id):
    rows = system.sql("SELECT status, start_time, answer_time, end_time, "
        "duration, caller_id, callee_id, direction FROM call_logs "
        "WHERE channel = ?", (call_id,))
    assert len(rows) <= 1, rows
    if not rows:
        return None
    keys = ("status", "start_time", "answer_time", "end_time",
        "duration", "caller_id", "callee_id", "direction")
    return dict(zip(keys, rows[0]))


def wait_call_status(system, call_id, status, timeout=DEFAULT_TIMEOUT):
    return wait_until(lambda: (lambda r: r if r and r["status"] == status
        else None)(call_row(system, call_id)), timeout,
        what="call_logs %s status %s" % (call_id, status))


def sample_sdp(size=5000, seed=1):
    """A browser-like SDP offer (audio + video, trickle ICE) of ~size bytes."""
    import random
    rnd = random.Random(seed)
    sess = rnd.randrange(10**18, 10**19)
    lines = [
        "v=0",
        "o=- %d 2 IN IP4 127.0.0.1" % sess,
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0 1",
        "a=extmap-allow-mixed",
        "a=msid-semantic: WMS 5d2c3a1e-8f4b-4c61-9a3e-0b7f2d1c9e88",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126",
        "c=IN IP4 0.0.0.0",
        "a=rtcp:9 IN IP4 0.0.0.0",
        "a=ice-ufrag:%s" % "".join(rnd.choice("abcdefghijklmnop")
        for _ in range(4)),
        "a=ice-pwd:%s" % "".join(rnd.choice("ABCDEFGHIJKLMNOPqrstuv0123")
        for _ in range(24)),
        "a=ice-options:trickle",
        "a=fingerprint:sha-256 " + ":".join("%02X" % rnd.randrange(256)
        for _ in range(32)),
        "a=setup:actpass",
        "a=mid:0",
        "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        "a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/"
        "abs-send-time",
        "a=extmap:3 http://www.ietf.org/id/"
        "draft-holmer-rmcat-transport-wide-cc-extensions-01",
        "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=sendrecv",
        "a=msid:5d2c3a1e-8f4b-4c61-9a3e-0b7f2d1c9e88 "
        "2f1e0d9c-7b6a-4958-8e7f-1a2b3c4d5e6f",
        "a=rtcp-mux",
        "a=rtpmap:111 opus/48000/2",
        "a=rtcp-fb:111 transport-cc",
        "a=fmtp:111 minptime=10;useinbandfec=1",
        "a=rtpmap:63 red/48000/2",
        "a=fmtp:63 111/111",
        "a=rtpmap:9 G722/8000",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:13 CN/8000",
        "a=rtpmap:110 telephone-event/48000",
        "a=rtpmap:126 telephone-event/8000",
        "a=ssrc:%d cname:%s" % (rnd.randrange(2**32), "x" * 16),
        "a=ssrc:%d msid:5d2c3a1e-8f4b-4c61-9a3e-0b7f2d1c9e88 "
        "2f1e0d9c-7b6a-4958-8e7f-1a2b3c4d5e6f" % rnd.randrange(2**32),
        "m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 104 105 106 107 108 "
        "109 127 125 39 40 45 46 98 99 100 101 112 113 116 117 118",
        "c=IN IP4 0.0.0.0",
        "a=rtcp:9 IN IP4 0.0.0.0",
        "a=ice-options:trickle",
        "a=setup:actpass",
        "a=mid:1",
        "a=sendrecv",
        "a=rtcp-mux",
        "a=rtcp-rsize",
    ]
    pt = 96
    codecs = ["VP8/90000", "VP9/90000", "H264/90000", "AV1/90000",
        "H265/90000"]
    while len("\r\n".join(lines)) < size - 200:
        c = codecs[pt % len(codecs)]
        lines += [
            "a=rtpmap:%d %s" % (pt, c),
            "a=rtcp-fb:%d goog-remb" % pt,
            "a=rtcp-fb:%d transport-cc" % pt,
            "a=rtcp-fb:%d ccm fir" % pt,
            "a=rtcp-fb:%d nack" % pt,
            "a=rtcp-fb:%d nack pli" % pt,
            "a=fmtp:%d level-asymmetry-allowed=1;packetization-mode=1;"
            "profile-level-id=42e01f" % pt,
            "a=rtpmap:%d rtx/90000" % (pt + 1),
            "a=fmtp:%d apt=%d" % (pt + 1, pt),
        ]
        pt += 2
    lines.append("a=ssrc-group:FID %d %d" % (rnd.randrange(2**32),
        rnd.randrange(2**32)))
    return "\r\n".join(lines) + "\r\n"


def sample_candidate(i, seed=1):
    import random
    rnd = random.Random(seed * 1000 + i)
    kind = ["host", "srflx", "relay"][i % 3]
    ip = "192.168.%d.%d" % (rnd.randrange(256), rnd.randrange(1, 255))
    port = rnd.randrange(1024, 65535)
    cand = ("candidate:%d 1 udp %d %s %d typ %s generation 0 ufrag abcd "
        "network-id 1 network-cost 10" % (rnd.randrange(2**32),
        rnd.randrange(2**31), ip, port, kind))
    if kind != "host":
        cand = cand.replace(" generation", " raddr 0.0.0.0 rport 0 "
            "generation")
    return {"candidate": cand, "sdpMid": str(i % 2), "sdpMLineIndex": i % 2,
        "usernameFragment": "abcd"}


def assert_forwarded(got, sent, sender_ext):
    """got is sent as forwarded: every field equal, from = sender."""
    assert got.get("from") == sender_ext, (got.get("from"), sender_ext)
    for k, v in sent.items():
        if k == "from":
            continue
        assert k in got, "field %r lost" % k
        assert got[k] == v, "field %r changed" % k
    extra = set(got) - set(sent) - {"from", "seq"}
    assert not extra, "unexpected fields %r" % extra


# -- upgrades and frames by hand ----------------------------------------------

def upgrade_refusal(url, timeout=DEFAULT_TIMEOUT):
    """
    Ask for an upgrade of url by hand; (status, parsed JSON body) of a
    refusal. AssertionError when the upgrade is accepted.
    """
    u = urllib.parse.urlsplit(url)
    s = socket.create_connection((u.hostname, u.port), timeout=timeout)
    try:
        head, body = _upgrade(s, u.hostname, u.port,
            u.path + ("?" + u.query if u.query else ""))
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        assert status != 101, "upgrade accepted: %s" % _redact(url)
        hdrs = {k.strip().lower(): v.strip() for k, v in
            (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
        n = int(hdrs.get("content-length", "0"))
        while len(body) < n:
            chunk = s.recv(4096)
            if not chunk:
                break
            body += chunk
        assert hdrs.get("content-type", "").startswith("application/json"), \
            hdrs
        return status, json.loads(body[:n])
    finally:
        s.close()


def frame(opcode, payload, mask=True, fin=True):
    """One client frame, masked unless mask is False."""
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))
