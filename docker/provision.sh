#!/bin/sh
# The `provision` one-shot of docker/compose.yaml: gives the agent the credential it appends to the
# audit log with (PRFIX_AGENT_AUDIT_CREDENTIAL), an API key of the `service` user `prfix-agent`, as
# `prfix up` does by itself (docs/audit.md). It logs in as `admin` with the bootstrap password and
# uses the gateway's REST API. A key written by an earlier run is kept, so this runs once per volume.
set -eu
gateway=${GATEWAY:-http://gateway:8080}
out=${CREDENTIAL_FILE:-/tmp/agent-audit-credential}

if [ -s "$out" ]; then
  echo "the agent's audit credential exists: kept"
  exit 0
fi

# post PATH JSON [TOKEN]: prints the body, then the HTTP status on a last line of its own.
post() {
  if [ -n "${3:-}" ]; then
    curl -sS -w '\n%{http_code}' -H 'content-type: application/json' -H "authorization: Bearer $3" \
      -d "$2" "$gateway$1"
  else
    curl -sS -w '\n%{http_code}' -H 'content-type: application/json' -d "$2" "$gateway$1"
  fi
}
status() { printf '%s\n' "$1" | tail -n 1; }
body() { printf '%s\n' "$1" | sed '$d'; }
# field NAME JSON: the first string value of NAME (the values read here hold no quotes).
field() { printf '%s' "$2" | tr -d '\n' | sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }

password=$(cat "${PASSWORD_FILE:-/run/secrets/bootstrap_admin_password}")
answer=$(post /v1/auth/login "{\"username\":\"admin\",\"password\":\"$password\"}")
token=$(field accessToken "$(body "$answer")")
if [ "$(status "$answer")" != 200 ] || [ -z "$token" ]; then
  echo "login as admin failed (HTTP $(status "$answer")): $(body "$answer")" >&2
  exit 1
fi

# The service user's password is never used (it logs in with its key); 409: made by an earlier run.
user_password=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
answer=$(post /v1/users "{\"username\":\"prfix-agent\",\"password\":\"$user_password\",\"roles\":[\"ROLE_SERVICE\"]}" "$token")
case "$(status "$answer")" in
  200 | 409) ;;
  *)
    echo "creating the user prfix-agent failed (HTTP $(status "$answer")): $(body "$answer")" >&2
    exit 1
    ;;
esac

answer=$(post /v1/api-keys '{"name":"prfix-agent-audit","roles":["ROLE_SERVICE"],"owner":"prfix-agent"}' "$token")
secret=$(field secret "$(body "$answer")")
if [ "$(status "$answer")" != 200 ] || [ -z "$secret" ]; then
  echo "creating the agent's API key failed (HTTP $(status "$answer")): $(body "$answer")" >&2
  exit 1
fi
umask 077
printf '%s' "$secret" >"$out.new"
mv "$out.new" "$out"
echo "the agent's audit credential is provisioned"
