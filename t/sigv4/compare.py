#!/usr/bin/python3
"""
Signs many S3 requests with two independent signers and with ours, and
checks that the Authorization headers agree (TAP on stdout):

  * botocore's S3SigV4Auth (Debian's python3-botocore), with its clock
    frozen to the case's time;
  * curl --aws-sigv4, whose request is captured by a listener on a free
    loopback port.

Ours runs in the driver binary (t/sigv4/driver.c) given as argv[1].  Each
case hands every signer the same raw inputs (raw path, raw query
parameters, headers, body, time, credentials); the encoded path, the
canonical query, the amz date and the payload hash are each computed by
the signer itself, so a disagreement anywhere fails the case.

usage: compare.py DRIVER [SEED]
"""

import datetime
import hashlib
import random
import socket
import string
import subprocess
import sys
import threading
import types
import urllib.parse

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

DRIVER = sys.argv[1]
SEED = int(sys.argv[2]) if len(sys.argv) > 2 else 20150830

UNSIGNED = 'UNSIGNED-PAYLOAD'

tests = 0
failures = 0


def tap(good, name, diag=()):
    global tests, failures
    tests += 1
    if not good:
        failures += 1
    print('%sok %d - %s' % ('' if good else 'not ', tests, name))
    for line in diag:
        print('#   ' + line)
    sys.stdout.flush()


def x(s):
    if isinstance(s, str):
        s = s.encode('utf-8')
    return 'x' + s.hex()


class Case:
    def __init__(self, desc, method='GET', path='/bucket/key', params=(),
                 headers=(), body=b'', region='us-east-1', service='s3',
                 when=1440938160, akid='AKIDEXAMPLE',
                 secret='wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
                 token=None, unsigned=False, host='bucket.example.com'):
        self.desc = desc
        self.method = method
        self.path = path
        self.params = list(params)
        self.headers = [('Host', host)] + list(headers)
        self.body = body
        self.region = region
        self.service = service
        self.when = when
        self.akid = akid
        self.secret = secret
        self.token = token
        self.unsigned = unsigned

    def payload(self):
        if self.unsigned:
            return UNSIGNED
        return hashlib.sha256(self.body).hexdigest()


def driver_input(case, headers, date=None):
    """The driver's description of a case; headers are those to sign."""
    out = ['method ' + x(case.method), 'path ' + x(case.path)]
    for k, v in case.params:
        out.append('param %s %s' % (x(k), x(v)))
    for k, v in headers:
        out.append('header %s %s' % (x(k), x(v)))
    if case.unsigned:
        out.append('payload ' + x(UNSIGNED))
    else:
        out.append('body ' + x(case.body))
    out.append('region ' + x(case.region))
    out.append('service ' + x(case.service))
    if date is None:
        out.append('time %d' % case.when)
    else:
        out.append('date ' + x(date))
    out.append('akid ' + x(case.akid))
    out.append('secret ' + x(case.secret))
    out.append('end')
    return '\n'.join(out) + '\n'


def run_driver(inputs):
    p = subprocess.run([DRIVER], input=''.join(inputs).encode(),
                       stdout=subprocess.PIPE, check=True)
    lines = p.stdout.decode().split('\n')[:-1]
    if len(lines) != len(inputs):
        raise SystemExit('driver gave %d answers for %d requests'
                         % (len(lines), len(inputs)))
    return [l.split('\t') for l in lines]


class RecordingAuth(botocore.auth.S3SigV4Auth):
    """botocore's S3 signer, keeping its canonical request to show."""

    def canonical_request(self, request):
        self.creq = super().canonical_request(request)
        return self.creq

    def string_to_sign(self, request, canonical_request):
        self.sts = super().string_to_sign(request, canonical_request)
        return self.sts


def freeze_botocore_clock(when):
    frozen = datetime.datetime.fromtimestamp(when, datetime.timezone.utc)
    frozen = frozen.replace(tzinfo=None)

    class FrozenDatetime(datetime.datetime):
        @classmethod
        def utcnow(cls):
            return cls(*frozen.timetuple()[:6])

        @classmethod
        def now(cls, tz=None):
            return cls(*frozen.timetuple()[:6], tzinfo=tz)

    botocore.auth.datetime = types.SimpleNamespace(datetime=FrozenDatetime)
    # newer botocore reads the clock through this helper
    if hasattr(botocore.auth, 'get_current_datetime'):
        botocore.auth.get_current_datetime = FrozenDatetime.utcnow


def botocore_sign(case, secret=None):
    """Returns (authorization, headers botocore signed, creq, sts)."""
    freeze_botocore_clock(case.when)
    url = 'https://%s%s' % (dict(case.headers)['Host'],
                            urllib.parse.quote(case.path, safe='/~'))
    req = AWSRequest(method=case.method, url=url, headers={},
                     data=case.body, params=case.params or None)
    for k, v in case.headers:
        # HTTPHeaders appends: repeated names stay, in order
        req.headers[k] = v
    if case.unsigned:
        req.context['client_config'] = types.SimpleNamespace(
            s3={'payload_signing_enabled': False})
    cred = Credentials(case.akid, secret or case.secret, case.token)
    auth = RecordingAuth(cred, case.service, case.region)
    auth.add_auth(req)
    signed = [(k, v) for k, v in req.headers.items()
              if k.lower() != 'authorization']
    return req.headers['Authorization'], signed, auth.creq, auth.sts


# -------------------------------------------------------------- the cases

def fixed_cases():
    cid = 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'
    body = b'Welcome to the cache.\n' * 100
    return [
        Case('GET object with Range', path='/nixcache/chunks/' + cid,
             headers=[('Range', 'bytes=0-65535')]),
        Case('HEAD object', method='HEAD', path='/nixcache/nar/abc.nar.zst'),
        Case('PUT object with body', method='PUT',
             path='/nixcache/chunks/' + cid, body=body,
             headers=[('Content-Type', 'application/zstd'),
                      ('Content-Length', str(len(body)))]),
        Case('PUT object, UNSIGNED-PAYLOAD', method='PUT', body=body,
             path='/nixcache/chunks/' + cid, unsigned=True),
        Case('DELETE object', method='DELETE', path='/nixcache/x'),
        Case('ListObjectsV2 with continuation token', path='/nixcache',
             params=[('list-type', '2'), ('prefix', 'chunks/ba'),
                     ('continuation-token', '1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/'
                      'wm36Hy4vbOwM+v=='), ('max-keys', '1000')]),
        Case('ListObjectsV2, empty values', path='/nixcache/',
             params=[('list-type', '2'), ('delimiter', '/'),
                     ('encoding-type', 'url'), ('fetch-owner', '')]),
        Case('key with spaces', path='/b/a key with  spaces /x'),
        Case('key with unicode', path='/b/\u043a\u043b\u044e\u0447/'
             '\u20ac\u1234\U0001f600'),
        Case("key with '+' and '='", path='/b/a+b=c&d?e#f%41'),
        Case('key with every printable ASCII',
             path='/b/' + ''.join(chr(c) for c in range(0x20, 0x7f))),
        Case('empty segments and dots kept', path='//b//./x/../y/.'),
        Case('root path', path='/'),
        Case('session token', token='FQoGZXIvYXdzEJr//////////wEaD+/='),
        Case('header values trimmed', headers=[
            ('X-Amz-Meta-Note', '  two   spaces\tand tab  '),
            ('x-amz-meta-EMPTY', ''),
            ('Content-Type', 'text/plain; charset=utf-8')]),
        Case('repeated header names, any case', headers=[
            ('X-Amz-Meta-Zoo', 'zoobar'), ('x-amz-meta-zoo', 'foobar'),
            ('X-AMZ-META-ZOO', ' zoo  bar '), ('Range', 'bytes=1-2')]),
        Case('day boundary', when=1440979199),
        Case('year 2038', when=2147483647),
        Case('other region and service', region='eu-central-1',
             service='s3-object-lambda'),
        Case('long secret and odd key id', akid='ASIA0123456789ABCDEF',
             secret=''.join(string.ascii_letters) + '+/+/' * 10),
    ]


def random_text(rng, alphabet_sets, n):
    return ''.join(rng.choice(rng.choice(alphabet_sets)) for _ in range(n))


def random_cases(rng, count):
    sets = [string.ascii_letters + string.digits, '-._~', ' +=&?#%/;:@,$!',
            '\u00e9\u043a\u20ac\u1234\U0001f600\u00a0', '/', '\t"\'<>\\^`|{}']
    value_sets = sets[:4]
    regions = ['us-east-1', 'eu-west-3', 'ap-southeast-2', 'auto', 'garage',
               'us-gov-west-1']
    methods = ['GET', 'HEAD', 'PUT', 'POST', 'DELETE']
    cases = []
    for i in range(count):
        method = rng.choice(methods)
        path = '/' + random_text(rng, sets, rng.randint(0, 40))
        params = []
        for _ in range(rng.choice([0, 0, 1, 2, 3, 5])):
            key = random_text(rng, value_sets, rng.randint(1, 12))
            val = random_text(rng, value_sets, rng.randint(0, 12))
            params.append((key, val))
        if params and rng.random() < 0.3:
            params.append((params[0][0], random_text(rng, value_sets, 3)))
        headers = []
        if rng.random() < 0.5:
            headers.append(('Range', 'bytes=%d-%d' % (rng.randint(0, 99),
                                                      rng.randint(100, 999))))
        if rng.random() < 0.5:
            name = 'X-Amz-Meta-' + random_text(rng, [string.ascii_letters],
                                               rng.randint(1, 8))
            val = ' ' * rng.randint(0, 2) + ' '.join(
                random_text(rng, [string.ascii_letters + '=,;'],
                            rng.randint(1, 5))
                for _ in range(rng.randint(1, 3))) + ' ' * rng.randint(0, 2)
            headers.append((name, val))
        if rng.random() < 0.3:
            headers.append(('content-type', 'application/octet-stream'))
        if headers and rng.random() < 0.3:
            name, _ = rng.choice(headers)
            headers.append((rng.choice([name.upper(), name.lower()]),
                            random_text(rng, [string.ascii_letters + ' '],
                                        rng.randint(1, 10))))
        body = b''
        if method in ('PUT', 'POST'):
            body = bytes(rng.getrandbits(8)
                         for _ in range(rng.randint(0, 300)))
        secret = ''.join(rng.choice(string.ascii_letters + string.digits
                                    + '+/') for _ in range(40))
        akid = 'AKIA' + ''.join(rng.choice(string.ascii_uppercase
                                           + string.digits)
                                for _ in range(16))
        cases.append(Case(
            'random %d (%s %s)' % (i, method, path.encode(
                'unicode_escape').decode('ascii')[:40]),
            method=method, path=path, params=params, headers=headers,
            body=body, region=rng.choice(regions), when=rng.randint(
                946684800, 2524607999), akid=akid, secret=secret,
            token=(random_text(rng, [string.ascii_letters + '+/='], 30)
                   if rng.random() < 0.2 else None),
            unsigned=method in ('PUT', 'POST') and rng.random() < 0.3,
            host=rng.choice(['s3.amazonaws.com', 'localhost:9000',
                             'b.s3.eu-west-3.amazonaws.com'])))
    return cases


# ------------------------------------------------------------- botocore

def check_botocore(cases):
    signed = [botocore_sign(c) for c in cases]
    answers = run_driver([driver_input(c, s[1])
                          for c, s in zip(cases, signed)])
    for c, (want, headers, creq, sts), got in zip(cases, signed, answers):
        sha = dict((k.lower(), v) for k, v in headers).get(
            'x-amz-content-sha256')
        if sha != c.payload():
            tap(False, 'botocore: %s' % c.desc,
                ['botocore signed payload %s, the case says %s'
                 % (sha, c.payload())])
            continue
        diag = []
        if got[0] != want:
            diag = ['botocore: ' + want, 'ours:     ' + got[0]]
            if len(got) == 3:
                diag += ['botocore canonical request: %r' % creq,
                         'our canonical request:      %r'
                         % bytes.fromhex(got[1]).decode('utf-8', 'replace'),
                         'botocore string to sign: %r' % sts,
                         'our string to sign:      %r'
                         % bytes.fromhex(got[2]).decode()]
        tap(got[0] == want, 'botocore: %s' % c.desc, diag)


def check_negative_controls(cases):
    """The comparison must be able to fail: a wrong secret, a changed
    path, a changed parameter each give another Authorization."""
    c = cases[0]
    wrong_secret = botocore_sign(c, secret=c.secret + 'x')
    mutated = Case(c.desc, method=c.method, path=c.path + 'x',
                   params=c.params, headers=c.headers[1:], body=c.body,
                   host=dict(c.headers)['Host'])
    moved = Case(c.desc, method=c.method, path=c.path,
                 params=[('a', 'b')], headers=c.headers[1:], body=c.body,
                 host=dict(c.headers)['Host'])
    right = botocore_sign(c)
    got = run_driver([driver_input(c, right[1]),
                      driver_input(mutated, right[1]),
                      driver_input(moved, right[1])])
    tap(got[0][0] == right[0] and wrong_secret[0] != right[0],
        'control: a wrong secret changes botocore\'s signature')
    tap(got[1][0] != right[0], 'control: another path changes ours')
    tap(got[2][0] != right[0], 'control: another query changes ours')


# ------------------------------------------------------------------ curl

def capture_one(sock, box):
    try:
        conn, _ = sock.accept()
    except OSError:
        return
    conn.settimeout(10)
    data = b''
    try:
        while b'\r\n\r\n' not in data:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        conn.sendall(b'HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n')
    finally:
        conn.close()
    box.append(data)


def curl_sign(case):
    """Sends the case with curl --aws-sigv4 to a local listener and returns
    the request head curl wrote."""
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    sock.listen(1)
    sock.settimeout(15)
    port = sock.getsockname()[1]
    box = []
    t = threading.Thread(target=capture_one, args=(sock, box))
    t.start()
    # curl 7.88 signs the query as written: write it canonical
    query = '&'.join(sorted(
        '%s=%s' % (urllib.parse.quote(k, safe='-_.~'),
                   urllib.parse.quote(v, safe='-_.~'))
        for k, v in case.params))
    url = 'http://127.0.0.1:%d%s%s' % (
        port, urllib.parse.quote(case.path, safe='/~'),
        '?' + query if query else '')
    cmd = ['curl', '-s', '-o', '/dev/null', '--max-time', '10',
           '--path-as-is', '--aws-sigv4',
           'aws:amz:%s:%s' % (case.region, case.service),
           '--user', '%s:%s' % (case.akid, case.secret),
           '-X', case.method, '-H', 'x-amz-content-sha256: ' + case.payload()]
    for k, v in case.headers[1:]:
        cmd += ['-H', '%s: %s' % (k, v)]
    if case.body:
        cmd += ['--data-binary', '@-']
    cmd.append(url)
    subprocess.run(cmd, input=case.body, check=False)
    t.join(15)
    sock.close()
    return box[0] if box else b''


def check_curl(cases):
    inputs, wants = [], []
    for c in cases:
        head = curl_sign(c).decode('latin-1').split('\r\n')
        headers = []
        for line in head[1:]:
            if ':' in line:
                k, _, v = line.partition(':')
                headers.append((k, v.strip()))
        auth = dict((k.lower(), v) for k, v in headers).get('authorization')
        if auth is None or 'SignedHeaders=' not in auth:
            inputs.append(None)
            wants.append(None)
            continue
        names = auth.split('SignedHeaders=')[1].split(',')[0].split(';')
        signed = [(k, v) for k, v in headers if k.lower() in names]
        date = dict((k.lower(), v) for k, v in headers)['x-amz-date']
        inputs.append(driver_input(c, signed, date=date))
        wants.append(auth)
    answers = iter(run_driver([i for i in inputs if i is not None]))
    for c, i, want in zip(cases, inputs, wants):
        if i is None:
            tap(False, 'curl: %s' % c.desc, ['curl sent no signed request'])
            continue
        got = next(answers)
        tap(got[0] == want, 'curl: %s' % c.desc,
            [] if got[0] == want else ['curl: ' + want, 'ours: ' + got[0]])


def main():
    rng = random.Random(SEED)
    cases = fixed_cases() + random_cases(rng, 300)
    check_botocore(cases)
    check_negative_controls(cases)
    # curl 7.88 signs a header given an empty value but does not send it,
    # lists a repeated header name once per occurrence (AWS's suite,
    # get-header-key-duplicate, joins them), and has no session token
    # option: leave those cases to botocore
    curl_cases = [c for c in fixed_cases()
                  if not c.unsigned and not c.token
                  and all(v.strip() for k, v in c.headers)
                  and len(set(k.lower() for k, v in c.headers))
                  == len(c.headers)]
    check_curl(curl_cases)
    print('1..%d' % tests)
    return 1 if failures else 0


sys.exit(main())
