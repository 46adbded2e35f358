#!/usr/bin/env python3
"""
Turns AWS's published SigV4 test suite (the v4/ directory of
aws-sig-v4-test-suite, as shipped in awslabs/aws-c-auth under
tests/aws-signing-test-suite/v4) into the C vector table pasted into
t/unit/test_sigv4.c.

Only parsing happens here: the request line and headers become raw inputs
(path and query percent-decoded, header values as written, continuation
lines kept with their newline), and the expected canonical request, string
to sign and signature are copied from AWS's files.  Nothing is
canonicalised or signed, so the C test compares our signer with AWS.

usage: aws-suite-to-c.py DIR_OF_v4 > vectors.inc
"""

import hashlib
import json
import os
import sys
import urllib.parse

# S3 signs the path as sent, without normalisation: skip the cases whose
# expected canonical URI is a normalised path.
SKIP = {
    'get-relative-normalized', 'get-relative-relative-normalized',
    'get-slash-dot-slash-normalized', 'get-slash-normalized',
    'get-slash-pointless-dot-normalized', 'get-slashes-normalized',
}


def c_str(b):
    if b is None:
        return 'NULL'
    if isinstance(b, str):
        b = b.encode()
    out = '"'
    for c in b:
        ch = chr(c)
        if ch in '"\\':
            out += '\\' + ch
        elif ch == '\n':
            out += '\\n'
        elif 0x20 <= c < 0x7f:
            out += ch
        else:
            out += '\\%03o' % c
    return out + '"'


def c_lines(b, indent):
    """A C string literal over several lines: broken after each newline
    and every 64 bytes or less, so that no line passes 80 columns."""
    if b is None:
        return indent + 'NULL'
    if isinstance(b, str):
        b = b.encode()
    pieces = []
    for line in b.split(b'\n'):
        pieces.append(line + b'\n')
    pieces[-1] = pieces[-1][:-1]
    if len(pieces) > 1 and pieces[-1] == b'':
        pieces.pop()
    out = []
    width = min(64, 76 - len(indent))
    for piece in pieces:
        while True:
            out.append(indent + c_str(piece[:width]))
            piece = piece[width:]
            if not piece:
                break
    return '\n'.join(out)


def parse(raw):
    head, _, body = raw.partition(b'\n\n')
    lines = head.split(b'\n')
    # the request line is "METHOD target HTTP/1.1"; target may hold a space
    method, rest = lines[0].split(b' ', 1)
    target = rest.rsplit(b' ', 1)[0]
    path, _, query = target.partition(b'?')
    params = []
    if query:
        for p in query.split(b'&'):
            k, _, v = p.partition(b'=')
            params.append((urllib.parse.unquote_to_bytes(k),
                           urllib.parse.unquote_to_bytes(v)))
    headers = []
    for line in lines[1:]:
        if line == b'':
            continue
        if line[:1] in (b' ', b'\t'):
            n, v = headers[-1]
            headers[-1] = (n, v + b'\n' + line)
            continue
        n, _, v = line.partition(b':')
        headers.append((n, v))
    return method, urllib.parse.unquote_to_bytes(path), params, headers, body


def pair(k, v, indent):
    one = indent + '{ %s, %s },' % (c_str(k), c_str(v))
    if len(one) <= 79:
        print(one)
        return
    print(indent + '{')
    print(c_lines(k, indent + '    ') + ',')
    print(c_lines(v, indent + '    '))
    print(indent + '},')


def main(top):
    for name in sorted(os.listdir(top)):
        if name in SKIP:
            continue
        d = os.path.join(top, name)
        ctx = json.load(open(os.path.join(d, 'context.json')))
        raw = open(os.path.join(d, 'request.txt'), 'rb').read()
        method, path, params, headers, body = parse(raw)
        payload = hashlib.sha256(body).hexdigest()
        headers.append((b'X-Amz-Date', b'20150830T123600Z'))
        if ctx.get('sign_body'):
            headers.append((b'X-Amz-Content-SHA256', payload.encode()))
        token = ctx['credentials'].get('token')
        if token and not ctx.get('omit_session_token'):
            headers.append((b'X-Amz-Security-Token', token.encode()))

        def rd(f):
            return open(os.path.join(d, f), 'rb').read()

        authz = [l for l in rd('header-signed-request.txt').split(b'\n')
                 if l.startswith(b'Authorization:')][0][len('Authorization:'):]
        assert len(params) < 4 and len(headers) < 8
        I = ' ' * 8
        print('    {')
        print(I + '%s, %s,' % (c_str(name), c_str(method)))
        print(c_lines(path, I) + ',')
        print(I + '{')
        for k, v in params:
            pair(k, v, I + '    ')
        print(I + '    { NULL, NULL }')
        print(I + '},')
        print(I + '{')
        for k, v in headers:
            pair(k, v, I + '    ')
        print(I + '    { NULL, NULL }')
        print(I + '},')
        print(c_lines(payload, I) + ',')
        print(c_lines(rd('header-canonical-request.txt'), I) + ',')
        print(c_lines(rd('header-string-to-sign.txt'), I) + ',')
        print(c_lines(rd('header-signature.txt').strip(), I) + ',')
        print(c_lines(authz.strip(), I))
        print('    },')


main(sys.argv[1])
