#!/bin/sh
# Makes a throw-away CA and a server certificate for the test API server
# (SAN 127.0.0.1, ::1, localhost) with the openssl CLI.
# Usage: gen-certs.sh DIR   -> DIR/ca.crt DIR/server.crt DIR/server.key
set -eu
dir=${1:?usage: gen-certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
printf '%s\n' 'subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost' \
    'basicConstraints=CA:FALSE' \
    'keyUsage=digitalSignature,keyEncipherment' \
    'extendedKeyUsage=serverAuth' >ext.cnf
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt \
    -days 2 -subj /CN=kwb-test-ca 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr \
    -subj /CN=kwb-test-apiserver 2>/dev/null
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
    -out server.crt -days 2 -extfile ext.cnf 2>/dev/null
rm -f server.csr ext.cnf ca.srl
echo "$dir/ca.crt $dir/server.crt $dir/server.key"
