#!/usr/bin/env bash
# A private CA and a server certificate for the edge's TLS port, for a host without a
# public certificate (or for tests). Usage: scripts/make-tls-cert.sh DIR NAME [NAME...]
# NAMEs are the host names / IP addresses clients connect to (the first is the CN).
# Writes DIR/server.pem + DIR/server.key (CHAT_TLS_CERT_FILE / CHAT_TLS_KEY_FILE) and
# DIR/ca.pem, which clients are given to verify the server (the client's "CA file").
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 DIR NAME [NAME...]" >&2
  exit 2
fi
dir=$1
shift
mkdir -p "$dir"
san=""
for name in "$@"; do
  if [[ $name =~ ^[0-9.]+$ || $name == *:* ]]; then san+="IP:$name,"; else san+="DNS:$name,"; fi
done
ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
openssl req -x509 "${ec[@]}" -keyout "$dir/ca.key" -out "$dir/ca.pem" -days 3650 \
  -subj "/CN=ChatRoom private CA" 2>/dev/null
openssl req "${ec[@]}" -keyout "$dir/server.key" -out "$dir/server.csr" -subj "/CN=$1" 2>/dev/null
openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
  -CAcreateserial -out "$dir/server.pem" -days 825 2>/dev/null \
  -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' "${san%,}")
rm -f "$dir/server.csr" "$dir/ca.srl"
chmod 600 "$dir/ca.key" "$dir/server.key"
echo "$dir/server.pem $dir/server.key (CA for clients: $dir/ca.pem)"
