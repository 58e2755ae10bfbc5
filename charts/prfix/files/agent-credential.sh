#!/bin/sh
# The umbrella chart's post-install/post-upgrade hook: gives the agent the credential it appends to the
# audit log with (PRFIX_AGENT_AUDIT_CREDENTIAL), an API key of the `service` user prfix-agent, as
# docker/provision.sh does for Compose and `prfix up` by itself. Idempotent: a credential already in
# the Secret that the gateway still accepts is kept, and nothing else is done. Otherwise it logs in as
# the bootstrap admin, makes the user (kept when it exists) and a key, writes the key into the Secret
# (the one Secret its Role may read and patch) and restarts the agent's Deployment so its pods read it.
#
# Environment: GATEWAY (http://prfix-gateway:8080), KUBERNETES_API (https://kubernetes.default.svc),
# KUBERNETES_DIR (the projected token and ca.crt), NAMESPACE, SECRET, SECRET_KEY, DEPLOYMENT,
# ADMIN_USER, PASSWORD_FILE, SERVICE_USER, KEY_NAME, WAIT_SECONDS (how long the gateway may take).
set -eu
gateway=${GATEWAY:?}
api=${KUBERNETES_API:-https://kubernetes.default.svc}
kube=${KUBERNETES_DIR:-/var/run/secrets/prfix/kubernetes}
secret_path="/api/v1/namespaces/${NAMESPACE:?}/secrets/${SECRET:?}"
deployment_path="/apis/apps/v1/namespaces/$NAMESPACE/deployments/${DEPLOYMENT:?}"
key=${SECRET_KEY:-credential}

# Each call prints the body, then the HTTP status on a last line of its own; a failed connection is 000.
call() { # METHOD URL [DATA [CONTENT-TYPE [AUTHORIZATION]]]
  set -- "$@" "" "" ""
  curl -sS -w '\n%{http_code}' -X "$1" ${3:+-H "content-type: $4"} ${5:+-H "authorization: $5"} \
    ${3:+--data-binary "$3"} "$2" 2>/dev/null || printf '\n000'
}
kubernetes() { # METHOD PATH [DATA [CONTENT-TYPE]]
  set -- "$@" "" ""
  curl -sS -w '\n%{http_code}' --cacert "$kube/ca.crt" -X "$1" \
    -H "authorization: Bearer $(cat "$kube/token")" ${3:+-H "content-type: $4"} ${3:+--data-binary "$3"} \
    "$api$2" || printf '\n000'
}
status() { printf '%s\n' "$1" | tail -n 1; }
body() { printf '%s\n' "$1" | sed '$d'; }
# field NAME JSON: the string value of NAME (the values read here hold no quotes).
field() { printf '%s' "$2" | tr -d '\n' | sed -n "s/.*\"$1\": *\"\([^\"]*\)\".*/\1/p"; }

answer=$(kubernetes GET "$secret_path")
if [ "$(status "$answer")" != 200 ]; then
  echo "reading the Secret $SECRET failed (HTTP $(status "$answer")): $(body "$answer")" >&2
  exit 1
fi
existing=$(field "$key" "$(body "$answer")" | base64 -d 2>/dev/null || true)

# The gateway may still be starting: wait for it to answer (its pods come up with the release).
deadline=$(($(date +%s) + ${WAIT_SECONDS:-600}))
until [ "$(status "$(call GET "$gateway/v1/auth/whoami")")" = 401 ]; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "the gateway at $gateway did not answer within ${WAIT_SECONDS:-600} s" >&2
    exit 1
  fi
  sleep 3
done

if [ -n "$existing" ]; then
  answer=$(call GET "$gateway/v1/auth/whoami" "" "" "Bearer $existing")
  if [ "$(status "$answer")" = 200 ]; then
    echo "the agent's audit credential in $SECRET is accepted by the gateway: kept"
    exit 0
  fi
  echo "the credential in $SECRET is refused by the gateway (HTTP $(status "$answer")): making a new one"
fi

password=$(cat "${PASSWORD_FILE:?}")
answer=$(call POST "$gateway/v1/auth/login" "{\"username\":\"${ADMIN_USER:-admin}\",\"password\":\"$password\"}" \
  application/json)
token=$(field accessToken "$(body "$answer")")
if [ "$(status "$answer")" != 200 ] || [ -z "$token" ]; then
  echo "login as ${ADMIN_USER:-admin} with the bootstrap password failed (HTTP $(status "$answer")):" \
    "$(body "$answer"); if it was changed, make the credential by hand (docs/deployment.md)" >&2
  exit 1
fi

# The service user's password is never used (it logs in with its key); 409: made by an earlier run.
user=${SERVICE_USER:-prfix-agent}
user_password=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
answer=$(call POST "$gateway/v1/users" \
  "{\"username\":\"$user\",\"password\":\"$user_password\",\"roles\":[\"ROLE_SERVICE\"]}" application/json "Bearer $token")
case "$(status "$answer")" in
  200 | 409) ;;
  *)
    echo "creating the user $user failed (HTTP $(status "$answer")): $(body "$answer")" >&2
    exit 1
    ;;
esac

answer=$(call POST "$gateway/v1/api-keys" \
  "{\"name\":\"${KEY_NAME:-prfix-agent-audit}\",\"roles\":[\"ROLE_SERVICE\"],\"owner\":\"$user\"}" application/json \
  "Bearer $token")
credential=$(field secret "$(body "$answer")")
if [ "$(status "$answer")" != 200 ] || [ -z "$credential" ]; then
  echo "creating the agent's API key failed (HTTP $(status "$answer")): $(body "$answer")" >&2
  exit 1
fi

answer=$(kubernetes PATCH "$secret_path" "{\"stringData\":{\"$key\":\"$credential\"}}" \
  application/merge-patch+json)
if [ "$(status "$answer")" != 200 ]; then
  echo "writing the credential into the Secret $SECRET failed (HTTP $(status "$answer")): $(body "$answer")" >&2
  exit 1
fi
echo "the agent's audit credential is in the Secret $SECRET"

# The agent reads it at start: roll its pods, as `kubectl rollout restart` does.
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
patch="{\"spec\":{\"template\":{\"metadata\":{\"annotations\":{\"prfix.dev/audit-credential-at\":\"$now\"}}}}}"
answer=$(kubernetes PATCH "$deployment_path" "$patch" application/merge-patch+json)
if [ "$(status "$answer")" != 200 ]; then
  echo "restarting the Deployment $DEPLOYMENT failed (HTTP $(status "$answer")): $(body "$answer")" >&2
  exit 1
fi
echo "the Deployment $DEPLOYMENT restarts with it"
