#!/bin/sh
# Makes, once, a private CA and the TLS certificates of the compose stack's Notary services in
# the folder $1 (the `certs` volume). Runs in alpine; nothing happens when the CA exists already.
set -eu
out=${1:?usage: make-certs.sh DIR}
if [ -s "$out/root-ca.crt" ]; then
    echo "certificates exist in $out; keeping them"
    exit 0
fi
command -v openssl >/dev/null || apk add --no-cache openssl >/dev/null
mkdir -p "$out"
cd "$out"
openssl ecparam -name prime256v1 -genkey -noout -out root-ca.key
openssl req -x509 -new -key root-ca.key -sha256 -days 3650 \
    -subj "/CN=trustgate compose private CA" -out root-ca.crt
# name, subjectAltName, extendedKeyUsage
issue() {
    openssl ecparam -name prime256v1 -genkey -noout -out "$1.key"
    openssl req -new -key "$1.key" -subj "/CN=$1" -out "$1.csr"
    printf 'subjectAltName=%s\nextendedKeyUsage=%s\n' "$2" "$3" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA root-ca.crt -CAkey root-ca.key -CAcreateserial \
        -days 825 -sha256 -extfile "$1.ext" -out "$1.crt"
    rm -f "$1.csr" "$1.ext"
}
# notary-server is reached as notary-server by trustgate and as localhost by clients on the
# host; it is also the signer's mTLS client.
issue notary-server "DNS:notary-server,DNS:localhost,IP:127.0.0.1" "serverAuth,clientAuth"
issue notary-signer "DNS:notary-signer" "serverAuth"
# The Notary images run as an unprivileged user.
chmod 0644 ./*.crt ./*.key
rm -f root-ca.key root-ca.srl
echo "made root-ca.crt, notary-server.{crt,key}, notary-signer.{crt,key} in $out"
