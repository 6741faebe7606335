#!/usr/bin/env python3
"""A misbehaving OCI registry for airlock's bad-input tests.

Serves one artifact (files in DIR: manifest.json and blobs named by hex) under
/v2/<mode>/..., where mode picks the fault:
  ok          behaves
  bearer      bearer-token flow: 401 with a realm on this host; /token wants
              Basic tester:s3cret-pw and returns a token the blob/manifest
              requests must carry
  realm       401 Bearer with a realm on another host
  baddigest   the manifest comes with a wrong Docker-Content-Digest
  bigmanifest a 100 MB manifest
  biglayer    blobs carry 4096 bytes more than announced
  redirect    blob GETs redirect to another host
  stall       blob GETs send half the bytes, then stall
  cutpatch    accepts uploads (POST, PATCH, PUT ?digest=) but cuts the
              second PATCH after keeping half of its bytes; GET on the upload
              says how far it got (Range: 0-N)
Prints the port on stdout once listening."""
import base64
import http.server
import os
import sys
import time

DIR = sys.argv[1]
TOKEN = "tok-" + base64.b16encode(os.urandom(8)).decode()


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send(self, code, body=b"", headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        port = self.server.server_address[1]
        if self.path.startswith("/token"):
            want = "Basic " + base64.b64encode(b"tester:s3cret-pw").decode()
            if self.headers.get("Authorization") != want:
                return self.send(401)
            return self.send(200, ('{"token": "%s"}' % TOKEN).encode())
        parts = self.path.split("/")
        if len(parts) < 5 or parts[1] != "v2":
            return self.send(404)
        mode, kind, ref = parts[2], parts[3], parts[4]
        if mode == "bearer" and self.headers.get("Authorization") != "Bearer " + TOKEN:
            return self.send(401, b"", [("WWW-Authenticate", 'Bearer realm="http://127.0.0.1:%d/token",'
                                         'service="fake",scope="repository:bearer:pull"' % port)])
        if mode == "realm":
            return self.send(401, b"", [("WWW-Authenticate", 'Bearer realm="http://evil.invalid/token",'
                                         'service="fake",scope="repository:realm:pull"')])
        if kind == "manifests":
            if mode == "bigmanifest":
                self.send_response(200)
                self.send_header("Content-Length", str(100 << 20))
                self.end_headers()
                chunk = b" " * (1 << 20)
                try:
                    for _ in range(100):
                        self.wfile.write(chunk)
                except OSError:
                    pass
                return
            body = open(os.path.join(DIR, "manifest.json"), "rb").read()
            import hashlib
            dg = "sha256:" + hashlib.sha256(body).hexdigest()
            if mode == "baddigest":
                dg = "sha256:" + "0" * 64
            return self.send(200, body, [("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
                                         ("Docker-Content-Digest", dg)])
        if kind == "blobs":
            hexd = ref.split(":")[-1]
            p = os.path.join(DIR, hexd)
            if not os.path.exists(p):
                return self.send(404)
            data = open(p, "rb").read()
            big = len(data) > 100000
            if big and mode == "redirect":
                return self.send(307, b"", [("Location", "http://other-host.invalid:%d%s" % (port, self.path))])
            if big and mode == "biglayer":
                data += b"\0" * 4096
            start = 0
            rng = self.headers.get("Range")
            if rng and rng.startswith("bytes=") and mode == "ok":
                start = int(rng[6:].split("-")[0])
            if big and mode == "stall":
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                time.sleep(30)
                return
            if start:
                return self.send(206, data[start:], [("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))])
            return self.send(200, data)
        return self.send(404)


UPLOADS = {}
UPLOADED = set()  # blobs pushed to cutpatch in this run (it starts empty)
PUSHED = {}
CUTS = [0]


def _upload_do(self, method):
    import hashlib
    import uuid
    from urllib.parse import urlparse, parse_qs
    u = urlparse(self.path)
    parts = u.path.split("/")
    n = int(self.headers.get("Content-Length") or 0)
    if method == "PUT" and parts[3] == "manifests":
        body = self.rfile.read(n)
        PUSHED[parts[4]] = body
        return self.send(201, b"", [("Docker-Content-Digest", "sha256:" + hashlib.sha256(body).hexdigest())])
    if parts[3:5] != ["blobs", "uploads"]:
        return self.send(404)
    if method == "POST":
        uid = uuid.uuid4().hex
        UPLOADS[uid] = bytearray()
        return self.send(202, b"", [("Location", "/v2/%s/blobs/uploads/%s" % (parts[2], uid)), ("Range", "0-0")])
    uid = parts[5]
    if uid not in UPLOADS:
        return self.send(404)
    buf = UPLOADS[uid]
    if method == "GET":
        return self.send(204, b"", [("Range", "0-%d" % (len(buf) - 1))])
    if method == "PATCH":
        start = int(self.headers.get("Content-Range", "0-0").split("-")[0])
        if start != len(buf):
            return self.send(416)
        if parts[2] == "cutpatch" and len(buf) > 0 and CUTS[0] == 0:
            CUTS[0] = 1
            buf += self.rfile.read(n // 2)
            print("cut PATCH at %d, kept %d bytes" % (start, n // 2), file=sys.stderr, flush=True)
            self.close_connection = True
            self.connection.shutdown(2)
            return
        buf += self.rfile.read(n)
        return self.send(202, b"", [("Location", "/v2/%s/blobs/uploads/%s" % (parts[2], uid)),
                                    ("Range", "0-%d" % (len(buf) - 1))])
    if method == "PUT":
        buf += self.rfile.read(n)
        dg = parse_qs(u.query).get("digest", [""])[0]
        if "sha256:" + hashlib.sha256(buf).hexdigest() != dg:
            return self.send(400, b'{"errors":[{"code":"DIGEST_INVALID","message":"digest mismatch"}]}')
        with open(os.path.join(DIR, dg[7:]), "wb") as f:
            f.write(buf)
        UPLOADED.add(dg[7:])
        del UPLOADS[uid]
        return self.send(201, b"", [("Docker-Content-Digest", dg)])


H.do_POST = lambda self: _upload_do(self, "POST")
H.do_PATCH = lambda self: _upload_do(self, "PATCH")
H.do_PUT = lambda self: _upload_do(self, "PUT")
_get = H.do_GET


def _do_get(self):
    parts = self.path.split("/")
    if len(parts) > 5 and parts[3:5] == ["blobs", "uploads"]:
        return _upload_do(self, "GET")
    if len(parts) > 4 and parts[2] == "cutpatch" and parts[3] == "blobs" and parts[4][7:] not in UPLOADED:
        return self.send(404)
    if len(parts) > 4 and parts[3] == "manifests" and parts[4] in PUSHED and self.command == "GET":
        import hashlib
        body = PUSHED[parts[4]]
        return self.send(200, body, [("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
                                     ("Docker-Content-Digest", "sha256:" + hashlib.sha256(body).hexdigest())])
    return _get(self)


H.do_GET = _do_get
H.do_HEAD = lambda self: _do_get(self)
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
srv.daemon_threads = True
print(srv.server_address[1], flush=True)
srv.serve_forever()
