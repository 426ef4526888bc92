#!/usr/bin/env python3
"""Does a server resume TLS sessions? (benches/peers.sh, workload 8)

    resumes.py URL CA_FILE N

Makes N + 1 HTTPS connections to URL one after the other, each a GET with `Connection: close`
read to the end (so that TLS 1.3 session tickets sent after the handshake have arrived), and
offers each new connection the session of the previous one. Prints how many of the N offered
sessions the server resumed (0 to N). Exits non-zero if a GET fails.
"""
import socket
import ssl
import sys
from urllib.parse import urlsplit


def main():
    url, ca, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or 443
    ctx = ssl.create_default_context(cafile=ca)
    session, resumed = None, 0
    for i in range(n + 1):
        with socket.create_connection((host, port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname=host, session=session) as s:
                s.sendall(
                    f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                    "Connection: close\r\n\r\n".encode()
                )
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
                if not data.startswith(b"HTTP/1.1 200"):
                    sys.exit(f"resumes.py: GET {url} answered {data[:80]!r}")
                if i > 0 and s.session_reused:
                    resumed += 1
                session = s.session
    print(resumed)


if __name__ == "__main__":
    main()
