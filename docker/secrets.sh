#!/bin/sh
# Makes the secrets that docker/compose.yaml reads, in docker/secrets/ (ignored by git). Run it once
# before the first `docker compose -f docker/compose.yaml up`; it never overwrites what exists, so
# running it again is harmless. Needs openssl.
#
#   gateway-signing-key.pem    RS256 key (3072 bits) the gateway signs access tokens with
#   audit-signing-key.pem      Ed25519 (PKCS#8) key the audit service signs checkpoints with
#   bootstrap-admin-password   password of `admin`, created at the gateway's first start
#   postgres-password          password of the `postgres` superuser of the compose database
#   database.toml              `database_url` for the services (a secret: it holds the password),
#                              given to them as their configuration file (PRFIX_CONFIG)
#
# The containers run as uid 10001 and see these files through bind mounts, so the files are
# readable by all (0644) while the directory stays private to you (0700).
set -eu
cd "$(dirname "$0")"
umask 077
mkdir -p secrets
chmod 0700 secrets

if [ ! -s secrets/gateway-signing-key.pem ]; then
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out secrets/gateway-signing-key.pem
fi
if [ ! -s secrets/audit-signing-key.pem ]; then
  openssl genpkey -algorithm ED25519 -out secrets/audit-signing-key.pem
fi
if [ ! -s secrets/bootstrap-admin-password ]; then
  openssl rand -hex 16 >secrets/bootstrap-admin-password
  echo "admin password: $(cat secrets/bootstrap-admin-password) (also in docker/secrets/bootstrap-admin-password)"
fi
if [ ! -s secrets/postgres-password ]; then
  openssl rand -hex 24 >secrets/postgres-password
fi
if [ ! -s secrets/database.toml ]; then
  printf 'database_url = "postgres://postgres:%s@postgres:5432/prfix"\n' "$(cat secrets/postgres-password)" \
    >secrets/database.toml
fi
chmod 0644 secrets/*
echo "secrets ready in $(pwd)/secrets"
